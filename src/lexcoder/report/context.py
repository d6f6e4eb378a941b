"""Everything the report shows, collected from a run directory's artifacts into plain dicts."""
from __future__ import annotations

import json
import logging
from typing import Any

import numpy as np
import pandas as pd

from ..audit.compare import format_interval
from ..clean import conflict_counts
from ..errors import LexcoderError
from ..evaluate import SMALL_SUPPORT, flagged_labels
from ..io import read_json
from ..ledger import training_table
from ..rundir import RunDir
from ..safety import unquote_cell
from ..split import class_indicators, prevalence_table

log = logging.getLogger(__name__)

TEXT_CHARS = 300  # texts in tables are cut to this many characters



def fmt(value: Any, digits: int = 3) -> str:
    """A figure as text: ``—`` for missing, fixed decimals for floats."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def fmt_ci(block: dict[str, Any], key: str) -> str:
    """``[0.482, 0.716]`` from ``block[key + '_ci']``; empty without an interval."""
    ci = block.get(f"{key}_ci")
    return f"[{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""


def load_artifacts(run: RunDir) -> dict[str, Any]:
    """The run's config, manifest, metrics, table, splits and predictions (error if training is missing)."""
    cfg = run.load_config()  # a clear error for a folder that is not a run directory
    missing = [p.name for p in (run.metrics, run.predictions, run.data, run.splits) if not p.is_file()]
    if missing:
        raise LexcoderError(f"{run.root}: cannot build a report, {', '.join(missing)} missing. Finish the run "
                            f"first (`lexcoder run CONFIG --out {run.root} --resume`).")
    return {"cfg": cfg, "manifest": run.read_manifest(), "metrics": read_json(run.metrics),
            # the codes the metrics were computed against: the original ones plus reviewed corrections
            "df": training_table(run.root, run.read_table(run.data), cfg.data.label_columns),
            "splits": run.read_table(run.splits),
            "preds": run.read_table(run.predictions)}


def dataset_summary(run: RunDir, art: dict[str, Any]) -> dict[str, Any]:
    """Rows read/kept/dropped, duplicates and conflicts, and label prevalence per split.

    The prevalence table also has each categorical variable's class shares (rows ``<variable> = <class>``;
    ``has_classes`` says whether there are any). ``n_conflicts`` counts conflicting duplicate groups and
    ``n_conflict_rows`` their rows (:func:`lexcoder.clean.conflict_counts`); ``conflicts`` lists (group, label)
    pairs, ``n_conflict_pairs`` of them.
    """
    labels = art["cfg"].data.label_columns
    data = art["manifest"].get("data", {})
    table, has_classes = art["df"], bool(art["cfg"].data.class_columns)
    if has_classes:  # a class's share of the texts per split, beside the labels' share of 1s
        indicators = class_indicators(table, list(art["cfg"].data.class_columns))
        table, labels = pd.concat([table, indicators], axis=1), list(labels) + list(indicators.columns)
    prev = prevalence_table(table, art["splits"], labels)
    prevalence = {"columns": [str(c) for c in prev.columns],
                  "rows": [{"label": str(lab), "values": [f"{int(v):,}" if lab == "rows" else f"{v:.1%}"
                                                          for v in row]} for lab, row in prev.iterrows()]}
    conflicts = pd.read_parquet(run.conflicts) if run.conflicts.is_file() else pd.DataFrame()
    counts = conflict_counts(conflicts)
    return {"facts": [(k.replace("_", " "), fmt(data.get(k))) for k in
                      ("rows_read", "rows_kept", "dropped_missing_labels", "dropped_empty_texts",
                       "duplicate_rows", "duplicate_groups", "conflicting_duplicate_groups",
                       "conflicting_duplicate_rows") if k in data],
            "source": data.get("path"), "prevalence": prevalence, "has_classes": has_classes,
            "conflicts": [{"label": r.label, "ids": ", ".join(map(str, r.ids)),
                           "values": ", ".join(map(str, r.values)), "text": _cut(r.text)}
                          for r in conflicts.head(20).itertuples()],
            "n_conflicts": counts["groups"], "n_conflict_rows": counts["rows"],
            "n_conflict_pairs": int(len(conflicts))}


def metric_rows(metrics: dict[str, Any]) -> list[dict[str, Any]]:
    """One row of formatted figures per label, then the macro and micro averages.

    Figures with a bootstrap interval have it under ``<key>_ci`` (text, empty if none). ``baseline`` is the
    F1 of the trivial rule (always 1; ``baseline_f1`` for the averages); ``below_baseline`` and ``small``
    (fewer positives than ``small_support_threshold``) are flags, false in metrics written without them.
    """
    rows = []
    # a run with categorical variables only has no labels and no (or null) macro/micro averages
    for lab, m in list(metrics["labels"].items()) + [(avg, metrics.get(avg) or {}) for avg in ("macro", "micro")]:
        row = {"label": lab, "support": fmt(m.get("support")) if lab in metrics["labels"] else "",
               "baseline": fmt(m["baseline"]["f1"] if "baseline" in m else m.get("baseline_f1")),
               "below_baseline": not m.get("beats_baseline", True), "small": bool(m.get("small_support"))}
        for key, name in (("precision", "precision"), ("recall", "recall"), ("f1", "f1"), ("kappa", "cohen_kappa")):
            row[key], row[f"{key}_ci"] = fmt(m.get(name)), fmt_ci(m, name)
        for key, name in (("alpha", "krippendorff_alpha"), ("ac1", "gwet_ac1"), ("auc", "roc_auc"),
                          ("ap", "average_precision"), ("ece", "ece"), ("threshold", "threshold")):
            row[key] = fmt(m.get(name)) if name in m else ""
        rows.append(row)
    return rows


def variable_sections(metrics: dict[str, Any], cfg: Any = None) -> list[dict[str, Any]]:
    """One section per categorical variable of ``metrics["variables"]`` (none without that block).

    ``cfg`` (the run's config) says whether a temperature was asked for; without it a temperature of 1 reads
    as "none fitted".

    Returns
    -------
    per variable: ``name``, ``n``, ``k``; the summary figures as text (``accuracy``, ``macro_f1``,
    ``weighted_f1``, ``kappa``, with ``<key>_ci`` where bootstrapped, ``alpha``, ``ac1``, ``ece``), the majority
    baseline (``baseline_class``, ``baseline_macro_f1``, ``baseline_accuracy``) and ``below_baseline``;
    ``classes`` (one row per class: ``name``, ``support``, ``precision``, ``recall``, ``f1`` with ``_ci``,
    ``small``), ``small`` (class names flagged ``small_support``), ``threshold`` and ``bootstrap`` (settings),
    ``ece_before`` (ECE before temperature scaling, "" if not recorded) and ``decision`` (a sentence on the
    temperature and class bias used, None for metrics written before they existed)
    """
    sections = []
    for name, v in (metrics.get("variables") or {}).items():
        base = v.get("baseline") or {}
        section = {"name": name, "n": fmt(v.get("n")), "k": len(v["classes"]),
                   "alpha": fmt(v.get("krippendorff_alpha")), "ac1": fmt(v.get("gwet_ac1")), "ece": fmt(v.get("ece")),
                   "baseline_class": base.get("class"), "baseline_macro_f1": fmt(base.get("macro_f1")),
                   "baseline_accuracy": fmt(base.get("accuracy")), "below_baseline": not v.get("beats_baseline", True),
                   "small": list(v.get("small_support", [])), "bootstrap": v.get("bootstrap"),
                   "threshold": v.get("small_support_threshold", SMALL_SUPPORT),
                   "ece_before": fmt((v.get("before_temperature") or {}).get("ece")) if "before_temperature" in v
                   else "", "decision": decision_note(v, cfg, cv=metrics.get("split") == "cv")}
        for key, figure in (("accuracy", "accuracy"), ("macro_f1", "macro_f1"), ("weighted_f1", "weighted_f1"),
                            ("kappa", "cohen_kappa")):
            section[key], section[f"{key}_ci"] = fmt(v.get(figure)), fmt_ci(v, figure)
        section["classes"] = [{"name": c, "support": fmt(m.get("support")), "small": bool(m.get("small_support")),
                               **{k: fmt(m.get(k)) for k in ("precision", "recall", "f1")},
                               **{f"{k}_ci": fmt_ci(m, k) for k in ("precision", "recall", "f1")}}
                              for c, m in v["per_class"].items()]
        sections.append(section)
    return sections


def decision_note(block: dict[str, Any], cfg: Any = None, *, cv: bool = False) -> str | None:
    """How a categorical variable's probabilities and decisions were made, in a few sentences: the
    temperature (with T; one per fold in k-fold mode) and the per-class bias (its non-zero values), both
    fitted on validation rows; None for a block written before these keys existed."""
    if "temperature" not in block:
        return None
    fitted = block["temperature"] != 1.0 or block.get("class_bias") is not None
    where = " The validation figures in metrics.json are in-sample for this rule (it was fitted there)." \
        if fitted and not cv else ""
    return f"{_temperature_note(block, cfg)} {_bias_note(block.get('class_bias'), cv=cv)}{where}"


def _temperature_note(block: dict[str, Any], cfg: Any) -> str:
    T, folds = block["temperature"], block.get("temperature_folds") or []
    if cfg is not None and cfg.calibration.classes != "temperature":
        return "Probabilities: the model's softmax (no temperature scaling)."
    if T == 1.0 and not folds:
        return "Probabilities: the model's softmax (temperature scaling found no better temperature than 1)."
    which = (f"one T per fold ({', '.join(f'{t:.2f}' for t in folds)}; the saved model's T = {T:.2f}), each fitted "
             "on its fold's validation rows") if folds else f"T = {T:.2f}, fitted on validation rows"
    return (f"Probabilities: temperature-scaled, {which} (a T above 1 softens over-confident probabilities; it "
            "never changes which class is the most probable).")


def _bias_note(bias: dict[str, float] | None, *, cv: bool) -> str:
    if bias is None:
        return "Decision: the most probable class (no class bias)."
    moved = ", ".join(f"{c} {b:+.2f}" for c, b in bias.items() if b)
    whose = "; each fold tuned its own, shown: the saved model's" if cv else ""
    values = f"{moved}; 0 for the others{whose}" if moved else f"it found no bias that helps: all 0{whose}"
    return ("Decision: the most probable class after a per-class bias on the log-probabilities, tuned on "
            f"validation rows for macro-F1 ({values}).")


def honesty_notes(metrics: dict[str, Any]) -> dict[str, Any]:
    """What the report says under its metrics table about small samples and trivial baselines.

    Returns
    -------
    ``threshold`` (the ``small_support`` limit), ``small`` and ``below_baseline`` (label names), ``n_labels``,
    ``where`` ("the test split" or "the out-of-fold rows")
    """
    return {"threshold": metrics.get("small_support_threshold", SMALL_SUPPORT), **flagged_labels(metrics),
            "n_labels": len(metrics["labels"]),
            "where": "the out-of-fold rows" if metrics.get("split") == "cv" else "the test split"}


def second_coder_rows(metrics: dict[str, Any]) -> list[dict[str, str]]:
    """Human-vs-human beside model-vs-human agreement, for labels with a second coder."""
    rows = []
    for lab, m in metrics["labels"].items():
        sc = m.get("second_coder")
        if not sc:
            continue
        hh, mh = sc["human_vs_human"], sc["model_vs_human"]
        rows.append({"label": lab, "n": fmt(hh["n"])} | {
            f"{who}_{k}": fmt(block[k]) for who, block in (("hh", hh), ("mh", mh))
            for k in ("percent_agreement", "cohen_kappa", "krippendorff_alpha", "gwet_ac1")})
    return rows


def label_issues(run: RunDir, top: int) -> dict[str, Any] | None:
    """The first ``top`` rows of ``label_issues.csv`` (written by the audit), or ``None`` if absent."""
    if not run.label_issues.is_file() or top <= 0:
        return None
    try:
        issues = pd.read_csv(run.label_issues, nrows=top, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        log.warning("%s could not be read (%s); left out of the report.", run.label_issues, err)
        return None
    return {"columns": list(issues.columns),  # shown as the data are, without the CSV's formula guard
            "rows": [[_cut(unquote_cell(v)) for v in row] for row in issues.itertuples(index=False)],
            "total": _count_lines(run.label_issues)}


def audit_rows(run: RunDir) -> dict[str, Any] | None:
    """The audit from ``audit_summary.json``, or ``None`` without an audit.

    Returns
    -------
    ``rows``: per label issues, conflicting duplicate groups on that label, estimated noise,
    reviewed/flipped, out-of-fold AP against the human codes before and after the recorded corrections;
    ``conflict_groups`` / ``conflict_rows``: conflicting duplicate groups over all labels and their rows
    ("—" in a summary written before these counts existed)
    """
    path = run.audit_summary
    if not path.is_file():
        return None
    summary = read_json(path)
    oof = summary.get("out_of_fold", {})
    before = (oof.get("before") or {}).get("labels", {})
    after = (oof.get("after") or {}).get("labels", {})
    rows = [{"label": lab, "positives": fmt(m.get("positives")), "issues": fmt(m.get("in_queue")),
             "conflicts": fmt(m.get("conflicting_duplicate_groups")),
             "noise": "—" if m.get("estimated_noise_rate") is None else f"{m['estimated_noise_rate']:.2%}",
             "reviewed": fmt(m.get("reviewed")), "flipped": fmt(m.get("flipped")),
             "ap_before": fmt(before.get(lab, {}).get("average_precision")),
             "ap_after": fmt(after.get(lab, {}).get("average_precision"))}
            for lab, m in summary.get("labels", {}).items()]
    return {"rows": rows, "variables": _audit_variable_rows(summary.get("variables", {})),
            "conflict_groups": fmt(summary.get("conflicting_duplicate_groups")),
            "conflict_rows": fmt(summary.get("conflicting_duplicate_rows"))}


def _audit_variable_rows(variables: dict[str, Any]) -> list[dict[str, str]]:
    """Per categorical variable of ``audit_summary.json``: classes, queue rows, conflicting duplicate groups,
    estimated wrong codes, reviewed / changed, out-of-fold macro-F1 against the codes before and after."""
    def figure(block: dict[str, Any], side: str) -> str:
        return fmt(((block.get("out_of_fold") or {}).get(side) or {}).get("macro_f1"))
    return [{"variable": v, "classes": fmt(len(b.get("classes", []))), "issues": fmt(b.get("in_queue")),
             "conflicts": fmt(b.get("conflicting_duplicate_groups")),
             "noise": "—" if b.get("estimated_noise_rate") is None else f"{b['estimated_noise_rate']:.2%}",
             "reviewed": fmt(b.get("reviewed")), "changed": fmt(b.get("changed")),
             "f1_before": figure(b, "before"), "f1_after": figure(b, "after")}
            for v, b in variables.items()]


def corrections_rows(run: RunDir) -> dict[str, Any] | None:
    """``corrections_report.json`` (``lexcoder corrections report``) as table rows, or ``None``.

    ``rows``: per 0/1 label and macro, F1 before/after/Δ/CI against the original and the corrected codes;
    ``variables``: per categorical variable the same with macro-F1 (accuracy is in ``corrections_report.md``).
    """
    path = run.corrections_report_json
    if not path.is_file():
        return None
    res = read_json(path)

    def cells(key: str, before: float, after: float, delta: float, ci) -> dict[str, str]:
        return {f"{key}_before": fmt(before), f"{key}_after": fmt(after), f"{key}_delta": f"{delta:+.3f}",
                f"{key}_ci": format_interval(ci)}

    def label_f1(key: str, lab: str) -> tuple:
        r = res[key]["labels"][lab]
        return r["before"]["f1"], r["after"]["f1"], r["delta_f1"], r["delta_f1_ci"]

    def macro_f1(key: str) -> tuple:
        m = res[key]["macro_f1"]
        return m["before"], m["after"], m["delta"], m["delta_ci"]

    def variable_f1(block: dict[str, Any]) -> tuple:
        return (block["before"]["macro_f1"], block["after"]["macro_f1"], block["delta_macro_f1"],
                block["delta_macro_f1_ci"])
    keys = ("original", "corrected")
    rows = []
    if "original" in res:  # runs with 0/1 labels
        rows = [{"label": lab, "changed": fmt(c["changed"]), "in_test": fmt(c["changed_in_test"]),
                 **{k: v for key in keys for k, v in cells(key, *label_f1(key, lab)).items()}}
                for lab, c in res["corrections"].items()]
        rows.append({"label": "macro", "changed": "", "in_test": "",
                     **{k: v for key in keys for k, v in cells(key, *macro_f1(key)).items()}})
    variables = [{"label": v, "changed": fmt(b["changed"]), "in_test": fmt(b["changed_in_test"]),
                  **{k: val for key in keys for k, val in cells(key, *variable_f1(b[key])).items()}}
                 for v, b in res.get("variables", {}).items()]
    if not rows and not variables:
        return None
    return {"before": res["before"], "test_rows": fmt(res["test_rows"]), "rows": rows, "variables": variables}


def run_facts(art: dict[str, Any]) -> list[tuple[str, str]]:
    """Short facts about the run for the report's header."""
    man, cfg, metrics = art["manifest"], art["cfg"], art["metrics"]
    stages = man.get("stages", {})
    where = "out-of-fold predictions of all folds" if metrics.get("split") == "cv" else "the test split"
    return [("created", str(man.get("created", "—"))), ("model", cfg.model.kind + (f" ({cfg.model.name})" if
                                                                                   cfg.model.name else "")),
            ("split", cfg.split.method), ("figures on", where),
            ("calibration", cfg.calibration.method), ("lexcoder", str(man.get("lexcoder_version", "—"))),
            ("git commit", str(man.get("git_commit") or "—")[:12]),
            ("stage times", ", ".join(f"{k} {v.get('seconds', 0):.1f} s" for k, v in stages.items()) or "—")]


def manifest_text(manifest: dict[str, Any]) -> str:
    return json.dumps(manifest, indent=2, ensure_ascii=False)


def _cut(value: Any) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= TEXT_CHARS else text[:TEXT_CHARS] + "…"


def _count_lines(path) -> int:
    try:
        return max(0, len(pd.read_csv(path, usecols=[0], dtype=str)))
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError):
        return 0
