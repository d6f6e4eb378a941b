"""Repeated runs (``lexcoder run … --repeat N``): the same config over N splits and seeds, figures as mean ± sd.

One test split gives one F1; another split of the same data gives another, and on a small sample the two
can differ by more than two models do. Repeat *i* (1-based) is a complete run
(:func:`~lexcoder.pipeline.run_pipeline`) in ``<out>/repeat-<i>`` whose ``split.seed``, ``evaluate.seed``
and model ``seed`` (for a family that has one) are the config's plus ``i - 1``; every other setting is the
same. ``repeats.json`` then gives, per label and for the macro/micro averages, each figure's mean, sample
standard deviation (ddof = 1), minimum, maximum and per-repeat values; ``repeats.md`` a short table.

The repeats folder keeps the run folder's rules (:mod:`lexcoder.rundir`): ``out`` must be new, empty or a
repeats folder lexcoder wrote (``repeats_manifest.json``); files lexcoder did not write are refused; one
process writes at a time (the same lock); every file is written atomically; ``resume`` runs only the
repeats that have not finished (an interrupted one continues through the run's own ``--resume``) and is
refused when the config, the data, the ledger, the lexcoder version or the number of repeats changed.
"""
from __future__ import annotations

import fnmatch
import logging
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from .config import Config, config_from_dict
from .errors import ConfigError, DataError
from .evaluate import SMALL_SUPPORT
from .io import read_json, write_json, write_text
from .pipeline import run_pipeline
from .rundir import LOCK_FILE, RunDir, RunDirError, RunInputs, ensure_dir, prepare_out, remove_debris
from .rundir.identity import _config_changes
from .rundir.lifecycle import REPEATS_MANIFEST

log = logging.getLogger(__name__)

REPEATS_JSON = "repeats.json"
REPEATS_MD = "repeats.md"
REPEAT_DIR = "repeat-{}"
# what lexcoder may write or remove in a repeats folder; anything else there is the user's
OWNED_PATTERNS = (REPEATS_MANIFEST, REPEATS_JSON, REPEATS_MD, "repeat-[0-9]*", LOCK_FILE, ".*.tmp", ".*.old")
FORMAT = "lexcoder repeats"
FIGURES = ("f1", "precision", "recall", "cohen_kappa", "average_precision")
"""The figures summarised per label and (where ``metrics.json`` has them) for the macro/micro averages."""
VARIABLE_FIGURES = ("accuracy", "macro_f1", "weighted_f1", "cohen_kappa")  # a categorical variable's block
CLASS_FIGURES = ("f1", "precision", "recall")  # one class of a categorical variable (``per_class``)
SPREAD_NOTE = "sd across {n} splits/seeds: differences smaller than this are split luck"


@dataclass(frozen=True)
class RepeatSeeds:
    """The seeds of repeat ``repeat`` (1-based); ``model`` is None for a family without a seed."""

    repeat: int
    split: int
    model: int | None
    evaluate: int


@dataclass
class RepeatsResult:
    """What :func:`run_repeats` produced (also on disk: ``repeats.json`` is ``summary``)."""

    root: Path
    summary: dict[str, Any]
    runs: list[RunDir]


def repeat_seeds(cfg: Config, n: int) -> list[RepeatSeeds]:
    """The seeds of repeats 1 … ``n``: the config's split, model and evaluate seeds plus ``i - 1``."""
    model_seed = _model_seed(cfg)
    return [RepeatSeeds(repeat=i, split=cfg.split.seed + i - 1, evaluate=cfg.evaluate.seed + i - 1,
                        model=None if model_seed is None else model_seed + i - 1) for i in range(1, n + 1)]


def _model_seed(cfg: Config) -> int | None:
    """The model's seed as configured (its default if not set), or None if the family has no ``seed``."""
    from .models.params import declared_fields  # imported when used: the models package loads scikit-learn
    from .models.registry import get_model_class
    fields = declared_fields(get_model_class(cfg.model.kind))
    if "seed" not in fields:
        return None
    return int(cfg.model.params.get("seed", fields["seed"][1]))


def repeat_config(cfg: Config, seeds: RepeatSeeds) -> Config:
    """``cfg`` with the seeds of one repeat; every other setting unchanged (validated like a config file)."""
    raw = cfg.model_dump(mode="json", exclude_none=True)
    raw["split"]["seed"], raw["evaluate"]["seed"] = seeds.split, seeds.evaluate
    if seeds.model is not None:
        raw["model"]["params"]["seed"] = seeds.model
    return config_from_dict(raw, f"repeat {seeds.repeat} (seeds shifted by {seeds.repeat - 1})")


def run_repeats(cfg: Config, out: str | Path, n: int, *, resume: bool = False,
                corrections: str | Path | None = None,
                on_repeat: Callable[[RepeatSeeds, int, bool], None] | None = None) -> RepeatsResult:
    """Run the pipeline ``n`` times into ``out/repeat-1`` … ``out/repeat-<n>`` and summarise the spread.

    Parameters
    ----------
    cfg : validated configuration; repeat *i* shifts its split, model and evaluate seeds by ``i - 1``
    out : folder of the repeats: new, empty or (with ``resume``) a repeats folder lexcoder wrote
    n : number of repeats, at least 2
    resume : finish a set of repeats: finished repeats are kept as they are, an interrupted one continues
        (``run_pipeline(resume=True)``), missing ones run; refused if the inputs or ``n`` changed
    corrections : a corrections ledger, used by every repeat (see :func:`~lexcoder.pipeline.run_pipeline`)
    on_repeat : called before each repeat with its seeds, ``n`` and whether it is kept (finished earlier)

    Returns
    -------
    RepeatsResult, whose ``summary`` (also ``out/repeats.json``) is :func:`summarize_repeats`'s

    Raises
    ------
    ConfigError
        For ``n < 2`` or a seed out of its range; nothing written.
    RunDirError
        For a folder lexcoder may not write to, one in use, or a resume with other inputs or ``n``.
    """
    if n < 2:
        raise ConfigError(f"Repeated runs need at least 2 repeats (got {n}). For a single run use "
                          "`lexcoder run CONFIG --out DIR` (Python: lexcoder.run_pipeline).")
    if cfg.split.method == "column":
        log.warning('split.method = "column": every repeat uses the same split (column %r); only the seeds '
                    "vary, so the spread shows seed luck, not split luck.", cfg.split.column)
    seeds = repeat_seeds(cfg, n)
    configs = [repeat_config(cfg, s) for s in seeds]
    root, inputs = Path(out), RunInputs.of(cfg, corrections)
    _prepare(root, cfg, inputs, n, resume=resume)  # refusals before anything is written
    created = not root.exists()
    ensure_dir(root)
    with RunDir(root).lock("run --repeat"):
        recorded = _prepare(root, cfg, inputs, n, resume=resume)  # again: another process may have written
        _start(root, recorded, inputs, seeds)
        with _recorded_outcome(root, fresh=recorded is None, created=created):
            runs = [_run_one(root, c, s, n, corrections, on_repeat) for c, s in zip(configs, seeds)]
            summary = summarize_repeats([_read_metrics(r) for r in runs], seeds)
            write_json(summary, root / REPEATS_JSON)
            write_text(repeats_markdown(summary), root / REPEATS_MD)
    return RepeatsResult(root=root, summary=summary, runs=runs)


def _run_one(root: Path, cfg: Config, seeds: RepeatSeeds, n: int, corrections: str | Path | None,
             on_repeat: Callable[[RepeatSeeds, int, bool], None] | None) -> RunDir:
    """Run one repeat, continue it if it was interrupted, or keep it untouched if it finished."""
    run = RunDir(root / REPEAT_DIR.format(seeds.repeat))
    kept = run.is_run() and run.status() == "finished"
    if on_repeat is not None:
        on_repeat(seeds, n, kept)
    if not kept:
        run_pipeline(cfg, run.root, resume=run.is_run(), corrections=corrections)
    return run


def _read_metrics(run: RunDir) -> dict[str, Any]:
    try:
        return read_json(run.metrics)
    except (OSError, ValueError) as err:
        raise RunDirError(f"Run folder damaged: {run.metrics} cannot be read ({type(err).__name__}: {err}). "
                          f"Delete {run.root} and resume the repeats with --resume.") from None


# -- the folder: who owns it, starting and resuming ---------------------------------------------------------

def _prepare(root: Path, cfg: Config, inputs: RunInputs, n: int, *, resume: bool) -> dict[str, Any] | None:
    """Check that ``root`` may receive the repeats; return the recorded manifest to resume, or None (new).

    Nothing is written. A single run, a folder inside a run, files lexcoder did not write, repeats
    without ``resume`` and a resume with other inputs or ``n`` are refused (:class:`RunDirError`).
    """
    if RunDir(root).is_run():
        raise RunDirError(f"--out {root} holds a single lexcoder run, not repeated runs. Choose a new folder "
                          "for --repeat.")
    if not (root / REPEATS_MANIFEST).is_file():
        prepare_out(RunDir(root), resume=False)  # a file, a folder inside a run, foreign files: refused
        return None
    manifest = _read_manifest(root)
    foreign = sorted(e.name for e in root.iterdir() if not any(fnmatch.fnmatch(e.name, p) for p in OWNED_PATTERNS))
    if foreign:
        raise RunDirError(f"--out {root} holds files lexcoder did not create ({', '.join(foreign[:5])}"
                          f"{' …' if len(foreign) > 5 else ''}). lexcoder writes repeats only into a new folder, "
                          "an empty folder or its own repeats folder: move them, or choose another --out.")
    if not resume:
        raise RunDirError(f"--out {root} already holds repeated runs (status: {manifest.get('status')}). Use "
                          "--resume to finish what is missing (finished repeats are kept), or choose another "
                          "--out folder.")
    _check_same_set(root, manifest, cfg, inputs, n)
    return manifest


def _read_manifest(root: Path) -> dict[str, Any]:
    path = root / REPEATS_MANIFEST
    try:
        manifest = read_json(path)
    except (OSError, ValueError) as err:
        raise RunDirError(f"Repeats folder damaged: {path} cannot be read ({type(err).__name__}: {err}). "
                          "Choose another --out, or delete the folder.") from None
    if not (isinstance(manifest, dict) and manifest.get("format") == FORMAT and "inputs" in manifest):
        raise RunDirError(f"Repeats folder damaged: {path} is not a lexcoder repeats manifest. Choose another "
                          "--out, or delete the folder.")
    return manifest


def _check_same_set(root: Path, manifest: dict[str, Any], cfg: Config, inputs: RunInputs, n: int) -> None:
    """Refuse to resume repeats whose inputs or number changed, naming each change."""
    recorded = RunInputs.recorded(manifest)
    changes = []
    if manifest.get("n_repeats") != n:
        changes.append(f"they were started with --repeat {manifest.get('n_repeats')}, now --repeat {n}")
    if recorded.config_hash != inputs.config_hash:
        changes.append("the configuration changed" + _which_keys(root, cfg))
    if recorded.data_sha256 != inputs.data_sha256:
        changes.append(f"the data file {cfg.data.path} changed")
    if recorded.corrections_sha256 != inputs.corrections_sha256:
        changes.append("the corrections ledger (given or not) is not the one they started with")
    if recorded.lexcoder_version != inputs.lexcoder_version:
        changes.append(f"lexcoder was updated ({recorded.lexcoder_version} → {inputs.lexcoder_version})")
    if changes:
        raise RunDirError(f"Cannot resume the repeats in {root}: " + "; ".join(changes) + ". Resumed repeats "
                          f"must have the same inputs and number. Start afresh with another --out folder (or "
                          f"delete {root}).")


def _which_keys(root: Path, cfg: Config) -> str:
    """`` (key: old → new; …)`` read against repeat 1's config (its seeds are the config's own), if any."""
    first = RunDir(root / REPEAT_DIR.format(1))
    if not first.config.is_file():
        return ""
    return f" ({_config_changes(first, repeat_config(cfg, repeat_seeds(cfg, 1)[0]))})"


def _start(root: Path, recorded: dict[str, Any] | None, inputs: RunInputs, seeds: list[RepeatSeeds]) -> None:
    """Write (or, resuming, update) ``repeats_manifest.json``; the status is ``running``."""
    remove_debris(root)
    manifest = dict(recorded or {})
    manifest.update({"format": FORMAT, "n_repeats": len(seeds), "config_hash": inputs.config_hash,
                     "inputs": inputs.__dict__.copy(), "lexcoder_version": inputs.lexcoder_version,
                     "seeds": [asdict(s) for s in seeds], "status": "running", "error": None,
                     "created": manifest.get("created") or _now()})
    write_json(manifest, root / REPEATS_MANIFEST)


def _set_status(root: Path, status: str, error: str | None = None) -> None:
    path = root / REPEATS_MANIFEST
    if path.is_file():
        write_json({**read_json(path), "status": status, "error": error, "ended": _now()}, path)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@contextmanager
def _recorded_outcome(root: Path, *, fresh: bool, created: bool):
    """Mark the repeats ``finished``, ``interrupted`` or ``failed`` in their manifest.

    As for a single run: fresh repeats stopped by bad input before any repeat folder exists (the first
    run removed its own) leave nothing, and the folder goes too if this call created it.
    """
    try:
        yield
    except KeyboardInterrupt:
        _set_status(root, "interrupted")
        raise
    except (DataError, ConfigError) as err:
        if fresh and not list(root.glob("repeat-[0-9]*")):
            for name in (REPEATS_MANIFEST, LOCK_FILE):
                (root / name).unlink(missing_ok=True)
            if created and not any(root.iterdir()):
                root.rmdir()
        else:
            _set_status(root, "failed", f"{type(err).__name__}: {err}")
        raise
    except BaseException as err:
        _set_status(root, "failed", f"{type(err).__name__}: {err}")
        raise
    _set_status(root, "finished")


# -- the summary ----------------------------------------------------------------------------------------

def spread(values: Sequence[float | None]) -> dict[str, Any]:
    """Mean, sample sd (ddof = 1), min and max of one figure over the repeats.

    ``None`` values (a figure undefined in a repeat, e.g. κ when model and coders use one code only) are
    left out of the statistics and kept in ``values``; ``n`` counts the defined ones. ``sd`` needs two.
    """
    defined = np.array([v for v in values if v is not None], dtype=float)
    some = len(defined) > 0
    return {"mean": float(defined.mean()) if some else None,
            "sd": float(defined.std(ddof=1)) if len(defined) > 1 else None,
            "min": float(defined.min()) if some else None, "max": float(defined.max()) if some else None,
            "n": int(len(defined)), "values": list(values)}


def summarize_repeats(metrics: Sequence[dict[str, Any]], seeds: Sequence[RepeatSeeds]) -> dict[str, Any]:
    """The spread of each figure over the repeats' ``metrics.json`` (the evaluated split: test, or cv).

    Returns
    -------
    dict with ``n_repeats``, ``split``, ``seeds`` (one entry per repeat), ``small_support_threshold``,
    ``labels`` ({label: {figure: :func:`spread`} for :data:`FIGURES`, ``baseline_f1`` (always-1 F1) and
    ``support``, plus ``small_support``: in how many repeats the label was flagged}), ``macro`` and
    ``micro`` (the :data:`FIGURES` their ``metrics.json`` block has, and ``baseline_f1``; absent in a run
    without 0/1 labels) and, for categorical variables, ``variables`` ({variable: {figure: spread} for
    :data:`VARIABLE_FIGURES`, and ``per_class``: {class: the figures of a label block}})
    """
    first = metrics[0]
    out: dict[str, Any] = {
        "n_repeats": len(metrics), "split": first["split"], "seeds": [asdict(s) for s in seeds],
        "small_support_threshold": first.get("small_support_threshold", SMALL_SUPPORT),
        "labels": {lab: _label_spread([m["labels"][lab] for m in metrics]) for lab in first["labels"]},
    }
    for avg in ("macro", "micro"):
        if all(avg in m for m in metrics):
            out[avg] = _average_spread([m[avg] for m in metrics])
    if first.get("variables"):
        out["variables"] = {var: _variable_spread([m["variables"][var] for m in metrics])
                            for var in first["variables"]}
    return out


def _label_spread(blocks: list[dict[str, Any]], figures: Sequence[str] = FIGURES) -> dict[str, Any]:
    out = {fig: spread([b.get(fig) for b in blocks]) for fig in figures}
    out["baseline_f1"] = spread([b.get("baseline", {}).get("f1") for b in blocks])
    out["support"] = spread([b.get("support") for b in blocks])
    out["small_support"] = sum(bool(b.get("small_support")) for b in blocks)
    return out


def _average_spread(blocks: list[dict[str, Any]]) -> dict[str, Any]:
    figures = [fig for fig in (*FIGURES, "baseline_f1") if any(b.get(fig) is not None for b in blocks)]
    return {fig: spread([b.get(fig) for b in blocks]) for fig in figures}


def _variable_spread(blocks: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {fig: spread([b.get(fig) for b in blocks]) for fig in VARIABLE_FIGURES}
    out["per_class"] = {c: _label_spread([b.get("per_class", {}).get(c, {}) for b in blocks], CLASS_FIGURES)
                        for c in blocks[0].get("per_class", {})}
    return out


@dataclass(frozen=True)
class SummaryRow:
    """One row of the repeats table (console and ``repeats.md``); ``baseline`` None: no baseline to show."""

    name: str
    f1: dict[str, Any]
    baseline: dict[str, Any] | None
    small_support: bool
    average: bool


def summary_rows(summary: dict[str, Any]) -> list[SummaryRow]:
    """The 0/1 labels (F1), the categorical variables (macro-F1), then the macro and micro averages."""
    rows = [SummaryRow(lab, m["f1"], m["baseline_f1"], bool(m["small_support"]), False)
            for lab, m in summary["labels"].items()]
    rows += [SummaryRow(f"{var} (macro-F1)", v["macro_f1"], None, False, False)
             for var, v in summary.get("variables", {}).items()]
    rows += [SummaryRow(avg, summary[avg]["f1"], summary[avg].get("baseline_f1"), False, True)
             for avg in ("macro", "micro") if avg in summary]
    return rows


def spread_cells(row: SummaryRow) -> tuple[str, str, str]:
    """``("0.612 ± 0.034", "0.570–0.650", "0.120")``: F1 mean ± sd, min–max, baseline mean (``—``: none)."""
    f = lambda v: "—" if v is None else f"{v:.3f}"  # noqa: E731
    stats = row.f1
    return (f"{f(stats['mean'])} ± {f(stats['sd'])}", f"{f(stats['min'])}–{f(stats['max'])}",
            f(row.baseline["mean"] if row.baseline else None))


def repeats_markdown(summary: dict[str, Any]) -> str:
    """``repeats.md``: label | F1 mean ± sd | min–max | always-1 F1 mean, then macro and micro."""
    n = summary["n_repeats"]
    where = "out-of-fold predictions" if summary["split"] == "cv" else "the test split"
    lines = [f"# {n} repeated runs", "",
             f"F1 on {where} of each repeat; {SPREAD_NOTE.format(n=n)}.", "",
             "| label | F1 mean ± sd | min–max | always-1 F1 mean |", "|---|---|---|---|"]
    for row in summary_rows(summary):
        name = row.name.replace("|", "\\|") + (" !" if row.small_support else "")
        lines.append(f"| {f'**{name}**' if row.average else name} | {' | '.join(spread_cells(row))} |")
    if any(row.small_support for row in summary_rows(summary)):
        lines += ["", f"! fewer than {summary['small_support_threshold']} positive texts in the evaluated split "
                  "of at least one repeat: its figures can swing widely."]
    lines += ["", "Seeds (split / model / evaluate): " + ", ".join(
        f"{s['repeat']}: {s['split']} / {'—' if s['model'] is None else s['model']} / {s['evaluate']}"
        for s in summary["seeds"]) + ". Each repeat's own figures and report are in repeat-<i>/."]
    return "\n".join(lines) + "\n"
