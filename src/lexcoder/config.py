"""Typed, validated configuration (TOML on disk, pydantic in memory).

A run directory always holds the *resolved* configuration (every default written out), so a run can be
reproduced from its ``config.toml`` alone.
"""
from __future__ import annotations

import sys
import typing
from pathlib import Path
from typing import Any, Literal

import tomli_w
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import ConfigError, did_you_mean
from .io import bom_encoding, describe_undecodable

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataConfig(_Section):
    """Where the human-coded table is and which columns mean what."""

    path: str = Field(description="csv, tsv, parquet, jsonl, xlsx or dta file")
    text_column: str = "text"
    id_column: str | None = None
    label_columns: list[str] = Field(min_length=1)
    group_column: str | None = None
    sheet: str | int | None = None
    drop_missing_labels: bool = False
    drop_empty_texts: bool = False
    second_coder_suffix: str | None = None

    @field_validator("label_columns")
    @classmethod
    def _unique_labels(cls, v: list[str]) -> list[str]:
        dupes = sorted({c for c in v if v.count(c) > 1})
        if dupes:
            raise ValueError(f"label_columns lists {dupes} more than once")
        # a label name ends up in file names, CSV headers and the report: no invisible control characters
        odd = [c for c in v if not c.strip() or any(ord(ch) < 32 or ord(ch) == 127 for ch in c)]
        if odd:
            raise ValueError(f"label_columns {odd} are empty or hold control characters (e.g. a tab or NUL); "
                             "rename those columns in the data")
        return v


class CleanConfig(_Section):
    """Text normalisation applied before anything else."""

    unicode_nfkc: bool = True
    normalize_whitespace: bool = True


class SplitConfig(_Section):
    """One split for all labels (see docs/ARCHITECTURE.md, key decisions)."""

    method: Literal["cluster_stratified", "kfold", "column"] = "cluster_stratified"
    seed: int = 42
    train: float = 0.6
    val: float = 0.2
    test: float = 0.2
    n_clusters: int = Field(40, ge=1)
    min_stratum: int = Field(4, ge=0)
    n_folds: int = Field(5, ge=3)  # each fold is test once, the next one validation, the rest train
    column: str | None = None
    # what may straddle splits when groups share identical texts (see lexcoder.split.split_units)
    duplicates: Literal["link", "keep_groups", "keep_duplicates"] = "link"

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

    kind: Literal["tfidf", "encoder", "llm"] = "tfidf"
    name: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    # after the thresholds are tuned on validation, refit on train + validation (more data, same
    # thresholds). Default (unset): on for tfidf without post-hoc calibration, off for fine-tuned models.
    refit_on_val: bool | None = None


class ThresholdConfig(_Section):
    """How decision thresholds are chosen (always on the validation split, never on test)."""

    method: Literal["f1", "fixed"] = "f1"
    fixed: float = Field(0.5, gt=0, lt=1)


class EvalConfig(_Section):
    """Evaluation settings."""

    bootstrap: int = Field(1000, ge=0)
    seed: int = 42
    ece_bins: int = Field(10, ge=2)


class CalibrationConfig(_Section):
    """Optional post-hoc calibration of the probabilities, fitted on the validation split."""

    method: Literal["none", "platt", "isotonic"] = "none"


class ReportConfig(_Section):
    """The HTML/Markdown report written as the last stage of a run."""

    enabled: bool = True
    top_issues: int = Field(20, ge=0)


class NotifyConfig(_Section):
    """Message when a run finishes or fails; credentials only from environment variables (lexcoder.notify)."""

    enabled: bool | None = None  # None: on whenever LEXCODER_TELEGRAM_* or LEXCODER_WEBHOOK_URL is set
    on: list[Literal["finish", "fail"]] = Field(default_factory=lambda: ["finish", "fail"])
    timeout: float = Field(5.0, gt=0, le=60)


class Config(_Section):
    """A whole lexcoder run."""

    data: DataConfig
    clean: CleanConfig = Field(default_factory=CleanConfig)
    split: SplitConfig = Field(default_factory=SplitConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    thresholds: ThresholdConfig = Field(default_factory=ThresholdConfig)
    evaluate: EvalConfig = Field(default_factory=EvalConfig)
    calibration: CalibrationConfig = Field(default_factory=CalibrationConfig)
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
    lines.append("Run `lexcoder init example.toml` for a commented example of every key.")
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
    from .models.params import check_model_params  # the models package imports this module
    cfg.model.params = check_model_params(cfg.model.kind, cfg.model.name, cfg.model.params, source=source)
    return cfg


def load_config(path: str | Path, overrides: list[str] | None = None) -> Config:
    """Read a TOML config; relative data paths are resolved against the config file's folder.

    Parameters
    ----------
    path : config file (UTF-8; a UTF-8 or UTF-16 byte-order mark is understood)
    overrides : ``"section.key=value"`` strings (value parsed as TOML, else taken as a string)
    """
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{path} is a folder, not a config file. Give the file, e.g. {path / 'lexcoder.toml'}.")
    if not path.is_file():
        raise ConfigError(f"Config file {path} does not exist. Create one with `lexcoder init {path}`.")
    try:
        raw = tomllib.loads(_config_text(path))
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path} is not valid TOML: {err}") from None
    apply_overrides(raw, overrides or [])
    data = raw.get("data")
    if isinstance(data, dict) and isinstance(data.get("path"), str) and not Path(data["path"]).is_absolute():
        data["path"] = str((path.parent / data["path"]).resolve())
    return config_from_dict(raw, f"{path} (with --set)" if overrides else str(path))


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


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> None:
    """Apply ``section.key=value`` overrides in place (CLI flags win over the file).

    The key must name a key of a section (checked against the configuration, with a "did you mean"),
    or a key inside a free-form table (``model.params.C=3``); a value never replaces a whole section or
    table. Values are parsed as TOML, else taken as a string.

    Raises
    ------
    ConfigError
        For a malformed or unknown key, a value that replaces a table, or an unparsable list/table value.
    """
    for item in overrides:
        parts, value = _parse_override(item)
        node = raw
        for depth, part in enumerate(parts[:-1]):
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {item!r}: {'.'.join(parts[:depth + 1])} holds a single value in the "
                                  "config file, not a table, so it has no keys to set.")
        node[parts[-1]] = value


def _parse_override(item: str) -> tuple[list[str], Any]:
    """The key parts and the value of one ``section.key=value`` override, both checked."""
    key, sep, text = item.partition("=")
    parts = [p.strip() for p in key.split(".")]
    if not sep or len(parts) < 2 or not all(parts):
        raise ConfigError(f"--set {item!r}: expected section.key=value, e.g. --set split.seed=7 or "
                          "--set model.params.C=3.")
    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        if text.strip()[:1] in ("[", "{", '"', "'"):
            raise ConfigError(f"--set {item!r}: the value is not valid TOML; put strings in quotes, e.g. "
                              """--set 'data.label_columns=["remorse", "hardship"]'.""") from None
        value = text.strip()
    _check_override_key(item, parts, value)
    return parts, value


def _check_override_key(item: str, parts: list[str], value: Any) -> None:
    """Walk the configuration's sections along ``parts``: every part must exist, tables stay tables."""
    model: Any = Config
    for depth, part in enumerate(parts):
        fields = model.model_fields
        here = ".".join(parts[:depth + 1])
        if part not in fields:
            where = "there is no section" if depth == 0 else f"[{'.'.join(parts[:depth])}] has no key"
            raise ConfigError(f"--set {item!r}: {where} {part!r}{did_you_mean(part, fields)}. Valid: "
                              f"{', '.join(fields)}.")
        annotation, rest = fields[part].annotation, parts[depth + 1:]
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            if not rest:
                raise ConfigError(f"--set {item!r}: [{here}] is a section; set one of its keys, e.g. "
                                  f"--set {here}.{next(iter(annotation.model_fields))}=...")
            model = annotation
        elif typing.get_origin(annotation) is dict:  # model.params: its keys are checked with the model
            if not rest and not isinstance(value, dict):
                raise ConfigError(f"--set {item!r}: {here} is a table; set one key inside it, e.g. "
                                  f"--set {here}.C=3, or give a whole table: --set '{here}={{C = 3}}'.")
            return
        elif rest:
            raise ConfigError(f"--set {item!r}: {here} is a single value, not a table; use --set {here}=...")
        else:
            return


def dump_config(cfg: Config) -> str:
    """The resolved configuration as TOML (``None`` values are left out: TOML has no null)."""
    return tomli_w.dumps(cfg.model_dump(mode="json", exclude_none=True))


EXAMPLE_CONFIG = '''\
# lexcoder configuration. Every key below shows its default unless marked "required".
# Run with:  lexcoder run THIS_FILE.toml --out runs/exp1

[data]
path = "letters.csv"              # required: csv, tsv, parquet, jsonl, xlsx or dta (relative to this file)
text_column = "text"              # column holding the text to code
# id_column = "id"                # unique id per row; generated (row_1, row_2, ...) if left out
label_columns = ["remorse", "financial_hardship"]   # required: one 0/1 column per label
                                  # (0/1, true/false, yes/no are all accepted)
# group_column = "case_id"        # rows of one group (case, letter, document) never straddle splits
# sheet = "Sheet1"                # Excel only: which sheet to read (default: the first)
drop_missing_labels = false       # true: drop rows with an empty label cell (the count is reported)
drop_empty_texts = false          # true: drop rows whose text is empty (the count is reported)
# second_coder_suffix = "_coder2" # columns like remorse_coder2 hold a second coder's labels

[clean]
unicode_nfkc = true               # Unicode NFKC normalisation (ligatures, full-width characters...)
normalize_whitespace = true       # collapse runs of spaces/newlines

[split]
method = "cluster_stratified"     # or "kfold" (cross-validation), or "column" (use your own split column)
seed = 42
train = 0.6                       # fractions for cluster_stratified (met to within one group's rows)
val = 0.2                         # thresholds are tuned here
test = 0.2                        # touched once, for the final figures
n_clusters = 40                   # TF-IDF KMeans clusters used for stratification
min_stratum = 4                   # strata with this many rows or fewer are merged into "other"
n_folds = 5                       # for method = "kfold"
# column = "split"                # for method = "column": values train/val/test (val is carved out of
                                  # train if missing), or fold numbers 0..k-1
duplicates = "link"               # "link": groups sharing an identical text are kept together, so neither
                                  # a group nor a repeated text straddles splits; "keep_groups": groups never
                                  # straddle, identical texts may; "keep_duplicates": the reverse

[model]
kind = "tfidf"                    # "tfidf" (fast, CPU), "encoder" (fine-tuned BERT-like), "llm" (LoRA)
# name = "minilm"                 # encoder/llm: bundled alias, local directory or model id
# refit_on_val = true             # after tuning thresholds on validation, refit on train+validation
                                  # (default: on for tfidf, off for fine-tuned models)
[model.params]                    # family-specific settings, e.g. for tfidf:
# C = 10.0

[thresholds]
method = "f1"                     # "f1": per label, maximise F1 on the validation split; "fixed"
fixed = 0.5                       # threshold used when method = "fixed"

[evaluate]
bootstrap = 1000                  # bootstrap resamples for confidence intervals (0 = off);
                                  # whole groups (group_column) are resampled when there is one
seed = 42
ece_bins = 10                     # equal-width bins for the calibration curve and ECE

[calibration]
method = "none"                   # "platt" or "isotonic": recalibrate probabilities on validation

[report]
enabled = true                    # write report.html and report.md at the end of the run
top_issues = 20                   # likely coding errors listed in the report (if an audit ran)

[notify]                          # a message when a long run finishes or fails (Telegram or any webhook)
# enabled = true                  # default: on whenever the environment variables below are set
on = ["finish", "fail"]
timeout = 5.0                     # seconds; an unreachable server never fails the run
# credentials only from the environment: LEXCODER_TELEGRAM_TOKEN + LEXCODER_TELEGRAM_CHAT_ID,
# or LEXCODER_WEBHOOK_URL (any URL that accepts a JSON POST)
'''
