"""Typed, validated configuration (TOML on disk, pydantic in memory).

A run directory always holds the *resolved* configuration (every default written out), so a run can be
reproduced from its ``config.toml`` alone.
"""
from __future__ import annotations

import inspect
import shlex
import textwrap
import tomllib
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import tomli_w
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo

from .errors import ConfigError, did_you_mean
from .io import bom_encoding, describe_undecodable

if TYPE_CHECKING:
    from .models.params import SettingDoc


ModelKind = Literal["tfidf", "encoder", "llm"]  # the model families (lexcoder.models.registry)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataConfig(_Section):
    """Where the human-coded table is and which columns mean what."""

    path: str = Field(examples=["letters.csv"], description=(
        "the table of coded texts (csv, tsv, parquet, jsonl, xlsx or dta), relative to this file"))
    text_column: str = Field("text", description="column holding the text to code")
    id_column: str | None = Field(None, examples=["id"], description=(
        "unique id per row; generated (row_1, row_2, ...) if left out"))
    label_columns: list[str] = Field(default_factory=list, examples=[["remorse", "financial_hardship"]],
                                     description=(
        "one 0/1 column per label (0/1, true/false, yes/no are all accepted); label_columns, class_columns "
        "or both"))
    class_columns: list[str] = Field(default_factory=list, examples=[["outcome"]], description=(
        "categorical columns: each text holds exactly one of k values (text or numbers), e.g. the outcome "
        "or a sentence's rhetorical role"))
    group_column: str | None = Field(None, examples=["case_id"], description=(
        "rows of one group (case, letter, document) never straddle splits"))
    sheet: str | int | None = Field(None, examples=["Sheet1"], description=(
        "Excel only: which sheet to read, by name or 0-based number (default: the first)"))
    drop_missing_labels: bool = Field(False, description=(
        "true: drop rows with an empty label cell (the count is reported)"))
    drop_empty_texts: bool = Field(False, description=(
        "true: drop rows whose text is empty (the count is reported)"))
    second_coder_suffix: str | None = Field(None, examples=["_coder2"], description=(
        "columns like remorse_coder2 hold a second coder's labels (agreement figures in the report)"))

    @field_validator("label_columns", "class_columns")
    @classmethod
    def _unique_labels(cls, v: list[str], info) -> list[str]:
        dupes = sorted({c for c in v if v.count(c) > 1})
        if dupes:
            raise ValueError(f"{info.field_name} lists {dupes} more than once")
        # a label name ends up in file names, CSV headers and the report: no invisible control characters
        odd = [c for c in v if not c.strip() or any(ord(ch) < 32 or ord(ch) == 127 for ch in c)]
        if odd:
            raise ValueError(f"{info.field_name} {odd} are empty or hold control characters (e.g. a tab or "
                             "NUL); rename those columns in the data")
        return v

    @model_validator(mode="after")
    def _some_codes(self) -> "DataConfig":
        if not self.label_columns and not self.class_columns:
            raise ValueError("name the coded columns: label_columns (0/1 columns), class_columns (categorical "
                             "columns) or both")
        from .safety import safe_filename
        folders: dict[str, list[str]] = {}
        for variable in self.class_columns:  # each variable's model has a folder named after it
            folders.setdefault(safe_filename(variable).casefold(), []).append(variable)
        clash = next((names for names in folders.values() if len(names) > 1), None)
        if clash:
            raise ValueError(f"class_columns {clash} differ only in case (or in characters a file name cannot "
                             "hold), so their models would share a folder on macOS and Windows; rename one column")
        both = sorted(set(self.label_columns) & set(self.class_columns))
        if both:
            raise ValueError(f"{both} is listed in both label_columns and class_columns; a column is either "
                             "0/1 or categorical")
        return self

    @property
    def coded_columns(self) -> list[str]:
        """Every column a coder filled in: the 0/1 labels, then the categorical variables."""
        return [*self.label_columns, *self.class_columns]


class CleanConfig(_Section):
    """Text normalisation applied before anything else."""

    unicode_nfkc: bool = Field(True, description=(
        "Unicode NFKC normalisation (ligatures, full-width characters...)"))
    normalize_whitespace: bool = Field(True, description="collapse runs of spaces and newlines")


class SplitConfig(_Section):
    """One split for all labels (see docs/ARCHITECTURE.md, key decisions)."""

    method: Literal["cluster_stratified", "kfold", "column"] = Field("cluster_stratified", description=(
        '"cluster_stratified", "kfold" (cross-validation) or "column" (use your own split column)'))
    seed: int = Field(42, description="seeds the split")
    train: float = Field(0.6, description="share of the rows for training (met to within one group's rows)")
    val: float = Field(0.2, description="share for validation: the thresholds are tuned here")
    test: float = Field(0.2, description="share for the test: touched once, for the final figures")
    n_clusters: int = Field(40, ge=1, description="TF-IDF KMeans clusters used for stratification")
    min_stratum: int = Field(4, ge=0, description='strata with this many rows or fewer are merged into "other"')
    n_folds: int = Field(5, ge=3, description=(
        'for method = "kfold": each fold is test once, the next one validation, the rest train'))
    column: str | None = Field(None, examples=["split"], description=(
        'for method = "column": values train/val/test (val is carved out of train if missing), or fold numbers '
        "0..k-1"))
    # see lexcoder.split.split_units
    duplicates: Literal["link", "keep_groups", "keep_duplicates"] = Field("link", description=(
        'what may straddle splits. "link": groups sharing an identical text are kept together, so neither a '
        'group nor a repeated text straddles splits; "keep_groups": groups never straddle, identical texts '
        'may; "keep_duplicates": the reverse'))

    @model_validator(mode="after")
    def _check(self) -> "SplitConfig":
        total = self.train + self.val + self.test
        if abs(total - 1.0) > 1e-6 or min(self.train, self.val, self.test) <= 0:
            raise ValueError(f"train/val/test must be positive and sum to 1 (got {total:g})")
        if self.method == "column" and not self.column:
            raise ValueError('method = "column" needs column = "<name of the split column>"')
        return self


class ModelConfig(_Section):
    """Which model family to train, and its settings (``params`` are family-specific)."""

    kind: ModelKind = Field("tfidf", description=(
        '"tfidf" (fast, CPU), "encoder" (a fine-tuned BERT-like model) or "llm" (a decoder LLM tuned with '
        "LoRA)"))
    name: str | None = Field(None, examples=["minilm"], description=(
        "encoder/llm: bundled alias, local directory or model id"))
    params: dict[str, Any] = Field(default_factory=dict, description=(
        "settings of the model family (the keys depend on kind)"))
    refit_on_val: bool | None = Field(None, examples=[True], description=(
        "after the thresholds are tuned on validation, refit on train + validation (more data, same "
        "thresholds). Default: on for tfidf without post-hoc calibration, off for fine-tuned models"))


class ThresholdConfig(_Section):
    """How decision thresholds are chosen (always on the validation split, never on test)."""

    method: Literal["f1", "fixed"] = Field("f1", description=(
        '"f1": per label, maximise F1 on the validation split; "fixed": the same threshold for every label'))
    fixed: float = Field(0.5, gt=0, lt=1, description='the threshold used when method = "fixed"')
    class_bias: Literal["none", "macro_f1"] = Field("none", description=(
        'categorical variables: "none" decides the most probable class; "macro_f1" adds a per-class bias to '
        "the log-probabilities, tuned on validation for macro-F1 (helps rare classes)"))


class EvalConfig(_Section):
    """Evaluation settings."""

    bootstrap: int = Field(1000, ge=0, description=(
        "bootstrap resamples for confidence intervals (0 = off); whole groups (group_column) are resampled "
        "when there is one"))
    seed: int = Field(42, description="seeds the bootstrap")
    ece_bins: int = Field(10, ge=2, description="equal-width bins for the calibration curve and ECE")


class CalibrationConfig(_Section):
    """Optional post-hoc calibration of the probabilities, fitted on the validation split."""

    method: Literal["none", "platt", "isotonic"] = Field("none", description=(
        '"platt" or "isotonic": recalibrate the probabilities on validation; "none": keep the model\'s'))
    classes: Literal["none", "temperature"] = Field("temperature", description=(
        'categorical variables: "temperature" rescales the softmax with one temperature fitted on '
        'validation (the decisions do not change, the probabilities become honest); "none": keep the model\'s'))


class ContextConfig(_Section):
    """What a model sees besides the text: neighbouring texts of the same document, position, metadata.

    Neighbours and position need ``order_column``; ``metadata_columns`` alone add features to the text.
    Prediction on a new corpus then needs the same columns.
    """

    document_column: str | None = Field(None, examples=["judgment_id"], description=(
        "column naming the document a text belongs to (default: [data] group_column)"))
    order_column: str | None = Field(None, examples=["sentence_index"], description=(
        "column giving the text's position in its document (numbers); setting it turns context on"))
    window: int = Field(1, ge=0, le=10, description=(
        "neighbours on each side that the model sees with the text (0: none)"))
    position: bool = Field(True, description="give the model the text's relative position in its document")
    metadata_columns: list[str] = Field(default_factory=list, examples=[["court", "year"]], description=(
        "extra columns given to the model as features (categories; numbers are binned)"))


class AuditConfig(_Section):
    """`lexcoder audit`: the review queue of likely human coding errors (its flags override these)."""

    folds: int = Field(5, ge=2, le=50, description=(
        "cross-fitting folds: each text is scored by a model trained on the other folds"))
    model: Literal["tfidf", "encoder", "llm", "blend"] | None = Field(None, examples=["blend"], description=(
        'model family for cross-fitting (default: the run\'s [model]); "blend" averages a fine-tuned encoder '
        "with TF-IDF (slow on a CPU: its time estimate is shown before it starts)"))
    method: Literal["calibrated", "loss", "cleanlab", "posterior"] = Field("calibrated", description=(
        'the score: "calibrated" (the probability of the human code, temperature-scaled per label so that '
        'labels compare), "loss" (uncalibrated), "cleanlab" or "posterior"'))
    order: Literal["interleave", "score"] = Field("interleave", description=(
        'after the conflicting duplicates: "interleave" (labels in turn, by their expected wrong codes) or '
        '"score" (all labels by score)'))
    quota: int | None = Field(None, ge=1, examples=[50], description=(
        "at most this many flagged rows per label or categorical variable in the queue"))
    block_columns: list[str] | None = Field(None, examples=[["coder", "batch"]], description=(
        "columns naming a document, coder or coding batch, to find clusters of flags in (default: the "
        "document / group column)"))
    isolate_test: bool = Field(True, description=(
        "keep the test rows out of the cross-fitting models' training data, so that corrections carry no "
        "information from the test codes into a retrained run's evaluation"))


class ReportConfig(_Section):
    """The HTML/Markdown report written as the last stage of a run."""

    enabled: bool = Field(True, description="write report.html and report.md at the end of the run")
    top_issues: int = Field(20, ge=0, description="likely coding errors listed in the report (if an audit ran)")


class NotifyConfig(_Section):
    """A message when a long run finishes or fails (Telegram or any webhook; lexcoder.notify).

    Credentials only from the environment: LEXCODER_TELEGRAM_TOKEN + LEXCODER_TELEGRAM_CHAT_ID, or
    LEXCODER_WEBHOOK_URL (any URL that accepts a JSON POST).
    """

    enabled: bool | None = Field(None, examples=[True], description=(
        "default: on whenever LEXCODER_TELEGRAM_* or LEXCODER_WEBHOOK_URL is set"))
    on: list[Literal["finish", "fail"]] = Field(default_factory=lambda: ["finish", "fail"], description=(
        'when to send: when a run finishes ("finish"), when it fails ("fail")'))
    timeout: float = Field(5.0, gt=0, le=60, description="seconds; an unreachable server never fails the run")


class Config(_Section):
    """A whole lexcoder run."""

    data: DataConfig
    clean: CleanConfig = Field(default_factory=CleanConfig)
    split: SplitConfig = Field(default_factory=SplitConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    thresholds: ThresholdConfig = Field(default_factory=ThresholdConfig)
    evaluate: EvalConfig = Field(default_factory=EvalConfig)
    calibration: CalibrationConfig = Field(default_factory=CalibrationConfig)
    context: ContextConfig = Field(default_factory=ContextConfig)
    audit: AuditConfig = Field(default_factory=AuditConfig)
    report: ReportConfig = Field(default_factory=ReportConfig)
    notify: NotifyConfig = Field(default_factory=NotifyConfig)


def _explain(err: ValidationError, source: str) -> ConfigError:
    lines = [f"Invalid configuration in {source}:"]
    for e in err.errors():
        where = ".".join(str(p) for p in e["loc"]) or "(top level)"
        if e["type"] == "extra_forbidden":
            lines.append(f"  - {where}: unknown key{did_you_mean(e['loc'][-1], _keys_at(e['loc'][:-1]))}")
        elif e["type"] == "missing" or isinstance(e["input"], dict):  # a whole section: too long to show
            lines.append(f"  - {where}: {e['msg']}")
        else:
            lines.append(f"  - {where} = {e['input']!r}: {e['msg']}")
    lines.append("Every key, with its default and what it does, is in the commented example config "
                 "(`lexcoder init`, or lexcoder.config.example_config() in Python).")
    return ConfigError("\n".join(lines))


def _keys_at(loc: tuple) -> list[str]:
    """The valid keys of the section at ``loc`` (``()``: the section names)."""
    model: Any = Config
    for part in loc:
        annotation = model.model_fields[part].annotation if part in model.model_fields else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return list(model.model_fields)


def config_from_dict(raw: dict[str, Any], source: str = "the configuration") -> Config:
    """Validate a plain dict (as read from TOML) into a :class:`Config`.

    ``[model.params]`` are checked against the model family's constructor as well
    (:func:`lexcoder.models.params.check_model_params`), so a misspelt or out-of-range setting stops a
    run before any data is read.
    """
    try:
        cfg = Config.model_validate(raw)
    except ValidationError as err:
        raise _explain(err, source) from None
    from .models.params import check_model_params  # imported when used: it loads scikit-learn
    cfg.model.params = check_model_params(cfg.model.kind, cfg.model.name, cfg.model.params, source=source)
    return cfg


def load_config(path: str | Path, overrides: list[str] | None = None, *, flag: str | None = None) -> Config:
    """Read a TOML config; relative data paths are resolved against the config file's folder.

    Parameters
    ----------
    path : config file (UTF-8; a UTF-8 or UTF-16 byte-order mark is understood)
    overrides : ``"section.key=value"`` strings (value parsed as TOML, else taken as a string)
    flag : how the caller's user gives overrides (the CLI: ``"--set"``), for messages; None: a Python call
    """
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{path} is a folder, not a config file. Give the file, e.g. {path / 'lexcoder.toml'}.")
    if not path.is_file():
        raise ConfigError(f"Config file {path} does not exist. Create one with `lexcoder init {path}` (in "
                          "Python: lexcoder.config.example_config()).")
    try:
        raw = tomllib.loads(_config_text(path))
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path} is not valid TOML: {err}") from None
    apply_overrides(raw, overrides or [], flag=flag)
    data = raw.get("data")
    if isinstance(data, dict) and isinstance(data.get("path"), str) and not Path(data["path"]).is_absolute():
        data["path"] = str((path.parent / data["path"]).resolve())
    return config_from_dict(raw, f"{path} (with {flag or 'overrides'})" if overrides else str(path))


def _config_text(path: Path) -> str:
    """The config file's text, decoded by its byte-order mark (UTF-8 without one)."""
    try:
        data = path.read_bytes()
    except OSError as err:
        raise ConfigError(f"{path} cannot be read ({err.strerror or err}). Check the file's permissions.") from None
    encoding = bom_encoding(data)
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as err:
        where = (describe_undecodable(data.splitlines(keepends=True)) if encoding.startswith("utf-8")
                 else f"{err.reason} at byte {err.start}")
        raise ConfigError(f"{path} is not UTF-8 text: {where}. Re-save the config file as UTF-8 (in most "
                          "editors: Save As, Encoding: UTF-8).") from None


def apply_overrides(raw: dict[str, Any], overrides: list[str], *, flag: str | None = None) -> None:
    """Apply ``section.key=value`` overrides in place (they win over the file).

    The key must name a key of a section (checked against the configuration, with a "did you mean"),
    or a key inside a free-form table (``model.params.C=3``); a value never replaces a whole section or
    table. Values are parsed as TOML, else taken as a string.

    Parameters
    ----------
    raw : the configuration as read from TOML (changed in place)
    overrides : ``"section.key=value"`` strings
    flag : how the caller's user gives an override, e.g. ``"--set"`` on the command line: messages then
        name it (``--set 'split.seed=x': ...``) and show examples as flags; None: a Python call
        (``override 'split.seed=x': ...``)

    Raises
    ------
    ConfigError
        For a malformed or unknown key, a value that replaces a table, or an unparsable list/table value.
    """
    said = _Wording(flag)
    for item in overrides:
        parts, value = _parse_override(item, said)
        node = raw
        for depth, part in enumerate(parts[:-1]):
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"{said(item)}: {'.'.join(parts[:depth + 1])} holds a single value in the "
                                  "config file, not a table, so it has no keys to set.")
        node[parts[-1]] = value


@dataclass(frozen=True)
class _Wording:
    """Overrides as the user gives them: ``--set 'a.b=1'`` on the command line, ``'a.b=1'`` in Python."""

    flag: str | None

    def __call__(self, item: str) -> str:
        """The override named at the start of a message."""
        return f"{self.flag or 'override'} {item!r}"

    def example(self, item: str) -> str:
        """An override as the user would write it (quoted for the shell when given by a flag)."""
        return f"{self.flag} {shlex.quote(item)}" if self.flag else item


def _parse_override(item: str, said: _Wording) -> tuple[list[str], Any]:
    """The key parts and the value of one ``section.key=value`` override, both checked."""
    key, sep, text = item.partition("=")
    parts = [p.strip() for p in key.split(".")]
    if not sep or len(parts) < 2 or not all(parts):
        raise ConfigError(f"{said(item)}: expected section.key=value, e.g. {said.example('split.seed=7')} or "
                          f"{said.example('model.params.C=3')}.")
    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        if text.strip()[:1] in ("[", "{", '"', "'"):
            example = said.example('data.label_columns=["remorse", "hardship"]')
            raise ConfigError(f"{said(item)}: the value is not valid TOML; put strings in quotes, e.g. "
                              f"{example}.") from None
        value = text.strip()
    _check_override_key(item, parts, value, said)
    return parts, value


def _check_override_key(item: str, parts: list[str], value: Any, said: _Wording) -> None:
    """Walk the configuration's sections along ``parts``: every part must exist, tables stay tables."""
    model: Any = Config
    for depth, part in enumerate(parts):
        fields = model.model_fields
        here = ".".join(parts[:depth + 1])
        if part not in fields:
            where = "there is no section" if depth == 0 else f"[{'.'.join(parts[:depth])}] has no key"
            raise ConfigError(f"{said(item)}: {where} {part!r}{did_you_mean(part, fields)}. Valid: "
                              f"{', '.join(fields)}.")
        annotation, rest = fields[part].annotation, parts[depth + 1:]
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            if not rest:
                first = next(iter(annotation.model_fields))
                raise ConfigError(f"{said(item)}: [{here}] is a section; set one of its keys, e.g. "
                                  f"{said.example(f'{here}.{first}=...')}")
            model = annotation
        elif typing.get_origin(annotation) is dict:  # model.params: its keys are checked with the model
            if not rest and not isinstance(value, dict):
                raise ConfigError(f"{said(item)}: {here} is a table; set one key inside it, e.g. "
                                  f"{said.example(f'{here}.C=3')}, or give a whole table: "
                                  f"{said.example(f'{here}={{C = 3}}')}.")
            return
        elif rest:
            raise ConfigError(f"{said(item)}: {here} is a single value, not a table; use "
                              f"{said.example(f'{here}=...')}")
        else:
            return


def dump_config(cfg: Config) -> str:
    """The resolved configuration as TOML (``None`` values are left out: TOML has no null)."""
    return tomli_w.dumps(cfg.model_dump(mode="json", exclude_none=True))


# -- the commented example configuration (``lexcoder init``), written from the models above ----------------
_COMMENT_AT = 34  # column where the comments after the keys start
_WIDTH = 110  # wrap comments here


def example_config(kind: ModelKind = "tfidf") -> str:
    """A commented TOML configuration of every key, written from :class:`Config` (``lexcoder init``).

    Each section is introduced by its docstring; each key shows its default (keys without one are
    commented out with an example; required keys hold an example value) and its ``Field`` description.
    ``[model.params]`` lists every setting of family ``kind`` commented out, with its default, range and
    description (:func:`lexcoder.models.params.setting_docs`). The text loads with :func:`load_config`
    once ``data.path`` names a real table.

    Parameters
    ----------
    kind : the model family whose settings are listed (and which ``[model] kind`` selects)

    Raises
    ------
    ConfigError
        For an unknown ``kind``.
    """
    from .models.params import setting_docs  # imported when used: the models package loads scikit-learn
    from .models.registry import get_model_class
    family = {doc.name: doc for doc in setting_docs(get_model_class(kind))}
    lines = _comment('lexcoder configuration. Every key shows its default unless marked "required"; a key '
                     "commented out is unset. Run with:  lexcoder run THIS_FILE.toml --out runs/exp1")
    for section, field in Config.model_fields.items():
        model = field.annotation
        lines += ["", *_comment(_doc_text(model)), f"[{section}]"]
        tables = {key: info for key, info in model.model_fields.items()
                  if typing.get_origin(info.annotation) is dict}
        for key, info in model.model_fields.items():
            if key not in tables:
                lines += _key_lines(key, *_shown(info, section, key, kind, family))
        for key, info in tables.items():  # only [model.params]: a family's settings, listed after the keys
            lines += _aligned(f"[{section}.{key}]", f'{info.description}. Below: every setting of kind = '
                                                    f'"{kind}" at its default; uncomment a line to change it')
            lines += [line for doc in family.values() if doc.name != "name" for line in _setting_lines(doc)]
    return "\n".join(lines) + "\n"


def _shown(info: FieldInfo, section: str, key: str, kind: str, family: dict[str, SettingDoc]
           ) -> tuple[Any, bool, str]:
    """(value shown, commented out?, comment) of one config key in the example config."""
    if (section, key) == ("model", "kind"):
        return kind, False, info.description
    if (section, key) == ("model", "name") and "name" in family:  # the family's own default model
        return family["name"].default, True, family["name"].description
    if (section, key) == ("data", "label_columns"):  # one of the two is required: show the 0/1 kind set
        return info.examples[0], False, info.description
    if (section, key) == ("data", "class_columns"):
        return info.examples[0], True, info.description
    if info.is_required():
        return info.examples[0], False, f"required: {info.description}"
    default = info.get_default(call_default_factory=True)
    if default is None:
        return info.examples[0], True, info.description
    return default, False, info.description


def _key_lines(key: str, value: Any, commented: bool, comment: str) -> list[str]:
    return _aligned(f"{'# ' if commented else ''}{key} = {toml_value(value)}", comment)


def _setting_lines(doc: SettingDoc) -> list[str]:
    """A model setting, commented out: its default and range, or a placeholder when it has none."""
    from .models.params import REQUIRED
    if doc.default is None or doc.default is REQUIRED:
        required = "required: " if doc.default is REQUIRED else ""
        return _aligned(f"# {doc.name} = <{doc.expected}>", f"{required}{doc.description}")
    return _aligned(f"# {doc.name} = {toml_value(doc.default)}", f"{doc.expected}: {doc.description}")


def _aligned(code: str, comment: str) -> list[str]:
    """``code`` followed by ``comment``, wrapped in a column from ``_COMMENT_AT`` (or two spaces further)."""
    first = code.ljust(_COMMENT_AT) if len(code) < _COMMENT_AT else f"{code}  "
    return textwrap.wrap(comment, _WIDTH, initial_indent=f"{first}# ", break_long_words=False,
                         break_on_hyphens=False, subsequent_indent=" " * _COMMENT_AT + "# ") or [code]


def _comment(text: str) -> list[str]:
    """``text`` as ``#`` comment lines (paragraphs separated by an empty comment line)."""
    out: list[str] = []
    for paragraph in text.split("\n\n"):
        out += (["#"] if out else []) + textwrap.wrap(paragraph, _WIDTH, initial_indent="# ",
                                                      subsequent_indent="# ", break_on_hyphens=False)
    return out


def _doc_text(model: type) -> str:
    """A section's docstring as plain text (reST ````code```` marks dropped)."""
    return inspect.cleandoc(model.__doc__ or "").replace("``", "")


def toml_value(value: Any) -> str:
    """``value`` as one line of TOML (lists inline, unlike tomli_w's multi-line arrays)."""
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return tomli_w.dumps({"v": value})[len("v = "):].rstrip("\n")
