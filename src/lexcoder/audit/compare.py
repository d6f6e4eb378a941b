"""Did the reviewed corrections help? A run against the run retrained on the corrected codes.

``metrics.json`` of a run retrained with ``--corrections`` scores its model against the *corrected* codes,
while the earlier run was scored against the original ones, so subtracting the two mixes two changes: a
better model, and a different answer key. :func:`compare_runs` separates them. It scores both runs' test
predictions on the same test rows against **both** answer keys — the original human codes and the
corrected ones — and gives each difference a paired bootstrap interval (the same documents resampled for
both runs).

Categorical variables (``class_columns``) are compared the same way on accuracy and macro-F1 of their
decided class (``variables`` in the result; paired intervals of both differences).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import LexcoderError
from ..io import write_json, write_text
from ..rundir import RunDir, writes_to_run
from ..safety import md_cell
from ..ledger import training_table
from ..stats import bootstrap_counts, bootstrap_difference, confusion_counts, count_metrics
from ..stats.bootstrap import _unit_counts, class_count_metrics

_FIGURES = ("f1", "precision", "recall", "cohen_kappa")


@writes_to_run("corrections report", "after")
def compare_runs(before: str | Path, after: str | Path, *, bootstrap: int = 1000, seed: int = 42,
                 write: bool = True) -> dict[str, Any]:
    """Compare a run with the run retrained on corrected codes, on the same test rows.

    Parameters
    ----------
    before : the earlier run directory (usually the audited one)
    after : the run trained with ``lexcoder run ... --corrections LEDGER``
    bootstrap : resamples for the paired intervals of the differences (0: none)
    seed : seed of the bootstrap
    write : also write ``corrections_report.json`` and ``.md`` into ``after``; its report shows them as
        the "Effect of the corrections" table once rebuilt (``lexcoder corrections report`` does that; in
        Python :func:`lexcoder.report.build_report`)

    Returns
    -------
    dict with ``corrections`` (codes changed per label, in all rows and in the test rows), and for each
    answer key (``original``, ``corrected``) per label and macro: ``before``/``after`` figures, ``delta``
    and ``delta_ci`` of F1 (these keys only when the runs have 0/1 labels). With categorical variables,
    ``variables``: per variable its ``classes``, codes changed (as in ``corrections``) and per answer key
    ``before``/``after`` accuracy and macro-F1 with ``delta_accuracy``, ``delta_macro_f1`` and their
    ``*_ci``.

    Raises
    ------
    LexcoderError
        If the runs are on different data, labels or test rows, or a run has not finished.
    """
    a, b = RunDir(Path(before)), RunDir(Path(after))
    labels, variables = _same_columns(a, b)
    original, corrected = _answer_keys(a, b, labels, variables)
    pred, test_ids = _test_decisions(a, b, [*labels, *variables])
    groups = original.loc[test_ids, "group"].to_numpy() if "group" in original else None
    out: dict[str, Any] = {
        "before": str(a.root), "after": str(b.root), "test_rows": len(test_ids),
        "corrections": _changes(original, corrected, labels, set(test_ids)),
        "resampling": {"resamples": bootstrap, "seed": seed, "unit": "group" if groups is not None else "row"},
    }
    if labels:
        decisions = {side: p[[f"{lab}_pred" for lab in labels]].astype(int).to_numpy() for side, p in pred.items()}
        for key, codes in (("original", original), ("corrected", corrected)):
            out[key] = _compare(codes.loc[test_ids, labels].to_numpy(), decisions["before"], decisions["after"],
                                labels, groups, bootstrap, seed)
    if variables:
        out["variables"] = {v: _compare_variable(v, original, corrected, pred, test_ids, groups, bootstrap, seed)
                            for v in variables}
    if write:
        write_json(out, b.corrections_report_json)
        write_text(render_markdown(out), b.corrections_report_md)
    return out


def _same_columns(a: RunDir, b: RunDir) -> tuple[list[str], list[str]]:
    """The 0/1 labels and categorical variables both runs code (they must be the same)."""
    da, db = a.load_config().data, b.load_config().data
    for what, ca, cb in (("labels", da.label_columns, db.label_columns),
                         ("categorical variables", da.class_columns, db.class_columns)):
        if list(ca) != list(cb):
            raise LexcoderError(f"The runs code different {what} ({a.root}: {', '.join(ca) or 'none'}; {b.root}: "
                                f"{', '.join(cb) or 'none'}): compare runs made from the same config.")
    return list(db.label_columns), list(db.class_columns)


def _answer_keys(a: RunDir, b: RunDir, labels: list[str], variables: list[str]
                 ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Original codes (``after``'s data.parquet) and the codes ``after`` trained on (with its corrections)."""
    sha_a = a.read_manifest().get("data", {}).get("sha256")
    sha_b = b.read_manifest().get("data", {}).get("sha256")
    if sha_a and sha_b and sha_a != sha_b:
        raise LexcoderError(f"{a.root} and {b.root} were made from different data files (sha256 {sha_a[:12]}… vs "
                            f"{sha_b[:12]}…). Retrain on the same data with `lexcoder run CONFIG --corrections "
                            "LEDGER --out NEW_RUN` and compare that run.")
    for run in (a, b):
        if not run.data.is_file():
            raise LexcoderError(f"{run.data} is missing: the run has not finished its data stage.")
    original = pd.read_parquet(b.data)
    corrected = training_table(b.root, original, labels, variables)
    return original.set_index(original["id"].astype(str)), corrected.set_index(corrected["id"].astype(str))


def _test_decisions(a: RunDir, b: RunDir, columns: list[str]) -> tuple[dict[str, pd.DataFrame], list[str]]:
    """Both runs' test decisions (``<column>_pred``; out-of-fold rows in k-fold mode) on their common,
    identical test rows, indexed by id."""
    preds = []
    for run in (a, b):
        if not run.predictions.is_file():
            raise LexcoderError(f"{run.predictions} is missing: finish the run first (`lexcoder run ... --resume`).")
        p = pd.read_parquet(run.predictions)
        p = p[p["split"].isin(["test", "cv"])]
        preds.append(p.set_index(p["id"].astype(str))[[f"{c}_pred" for c in columns]])
    ids = [set(p.index) for p in preds]
    if ids[0] != ids[1]:
        raise LexcoderError(
            f"The two runs were tested on different rows ({len(ids[0])} vs {len(ids[1])} test rows, "
            f"{len(ids[0] ^ ids[1])} differ): a comparison needs the same test set. Retrain with the "
            "same [split] settings (method, seed, fractions) as the first run.")
    if not ids[1]:
        raise LexcoderError(f"{b.predictions} has no test rows to compare on.")
    test_ids = sorted(ids[1])
    return {"before": preds[0].loc[test_ids], "after": preds[1].loc[test_ids]}, test_ids


def _changes(original: pd.DataFrame, corrected: pd.DataFrame, columns: list[str], test: set[str]
             ) -> dict[str, dict[str, int]]:
    in_test = original.index.isin(list(test))
    out = {}
    for col in columns:
        changed = original[col].astype(str).to_numpy() != corrected.loc[original.index, col].astype(str).to_numpy()
        out[col] = {"changed": int(changed.sum()), "changed_in_test": int((changed & in_test).sum()),
                    "changed_in_training": int((changed & ~in_test).sum())}
    return out


def _compare(Y: np.ndarray, before: np.ndarray, after: np.ndarray, labels: list[str], groups, n_boot: int,
             seed: int) -> dict[str, Any]:
    fig = {name: count_metrics(confusion_counts(Y, p).sum(axis=0)) for name, p in (("before", before),
                                                                                    ("after", after))}
    ci = (bootstrap_difference(Y, before, Y, after, groups=groups, n_boot=n_boot, seed=seed)
          if n_boot else None)
    per_label = {}
    for j, lab in enumerate(labels):
        row = {side: {f: _num(fig[side][f][j]) for f in _FIGURES} for side in ("before", "after")}
        row["delta_f1"] = float(fig["after"]["f1"][j] - fig["before"]["f1"][j])
        row["delta_f1_ci"] = ci["labels"][j] if ci else None
        per_label[lab] = row
    macro = {side: float(np.mean(fig[side]["f1"])) for side in ("before", "after")}
    return {"labels": per_label, "macro_f1": {**macro, "delta": macro["after"] - macro["before"],
                                              "delta_ci": ci["macro"] if ci else None}}


_CLASS_FIGURES = ("accuracy", "macro_f1")


def _compare_variable(variable: str, original: pd.DataFrame, corrected: pd.DataFrame,
                      pred: dict[str, pd.DataFrame], test_ids: list[str], groups, n_boot: int, seed: int
                      ) -> dict[str, Any]:
    """One categorical variable: codes changed, and accuracy/macro-F1 of both runs' decided classes against
    the original and the corrected codes, with paired bootstrap intervals of the differences."""
    classes = sorted(set(original[variable].astype(str)) | set(corrected[variable].astype(str)))
    index = {c: i for i, c in enumerate(classes)}

    def indices(values: pd.Series) -> np.ndarray:
        return values.astype(str).map(index).to_numpy()  # a class no code holds cannot be decided (same data)
    decisions = [indices(pred[side][f"{variable}_pred"]) for side in ("before", "after")]
    out: dict[str, Any] = {"classes": classes,
                           **_changes(original, corrected, [variable], set(test_ids))[variable]}
    for key, codes in (("original", original), ("corrected", corrected)):
        y = indices(codes.loc[test_ids, variable])
        rows = np.concatenate([_one_hot_counts(y, d, len(classes)) for d in decisions], axis=1)  # (n, 2k, 4)
        fig = class_count_metrics(rows.sum(axis=0).reshape(2, len(classes), 4))
        block: dict[str, Any] = {side: {f: _num(fig[f][i]) for f in _CLASS_FIGURES}
                                 for i, side in enumerate(("before", "after"))}
        for f in _CLASS_FIGURES:
            block[f"delta_{f}"] = float(fig[f][1] - fig[f][0])
            block[f"delta_{f}_ci"] = _paired_class_ci(rows, groups, len(classes), f, n_boot, seed) if n_boot else None
        out[key] = block
    return out


def _one_hot_counts(y: np.ndarray, pred: np.ndarray, k: int) -> np.ndarray:
    """(n, k, 4) one-vs-rest confusion indicators of class indices."""
    one_hot = np.eye(k, dtype=bool)
    return confusion_counts(one_hot[y], one_hot[pred])


def _paired_class_ci(rows: np.ndarray, groups, k: int, figure: str, n_boot: int, seed: int,
                     level: float = 0.95) -> list[float] | None:
    """Paired percentile bootstrap interval of ``figure(after) - figure(before)`` (whole groups resampled)."""
    counts = bootstrap_counts(_unit_counts(rows, groups), n_boot=n_boot, seed=seed).reshape(n_boot, 2, k, 4)
    values = class_count_metrics(counts)[figure]
    diff = values[:, 1] - values[:, 0]
    diff = diff[~np.isnan(diff)]
    if not len(diff):
        return None
    low, high = np.percentile(diff, [100 * (1 - level) / 2, 100 * (1 + level) / 2])
    return [float(low), float(high)]


def _num(x) -> float | None:
    return None if np.isnan(x) else float(x)


def render_markdown(result: dict[str, Any]) -> str:
    """The comparison as a Markdown page (``corrections_report.md``)."""
    lines = [f"# Corrections report: {md_cell(result['before'])} → {md_cell(result['after'])}", "",
             f"Both runs' test predictions on the same {result['test_rows']:,} test rows, scored against the "
             "original human codes and against the corrected codes. Δ = after − before; intervals: paired "
             f"{result['resampling']['unit']} bootstrap ({result['resampling']['resamples']} resamples).", "",
             "## Codes changed by the review", "", "| label | changed | in test rows | in training rows |",
             "|---|---|---|---|"]
    changes = {**result["corrections"], **result.get("variables", {})}
    for lab, c in changes.items():
        lines.append(f"| {md_cell(lab)} | {c['changed']} | {c['changed_in_test']} | {c['changed_in_training']} |")
    for key, title in (("original", "against the original codes"), ("corrected", "against the corrected codes")):
        if key in result:
            block = result[key]
            lines += ["", f"## F1 {title}", "", "| label | before | after | Δ | 95% CI of Δ |",
                      "|---|---|---|---|---|"]
            for lab, r in block["labels"].items():
                lines.append(f"| {md_cell(lab)} | {r['before']['f1']:.3f} | {r['after']['f1']:.3f} | "
                             f"{r['delta_f1']:+.3f} | {format_interval(r['delta_f1_ci'])} |")
            m = block["macro_f1"]
            lines.append(f"| **macro** | {m['before']:.3f} | {m['after']:.3f} | {m['delta']:+.3f} | "
                         f"{format_interval(m['delta_ci'])} |")
        if result.get("variables"):
            lines += ["", f"## Categorical variables {title}", "",
                      "| variable | figure | before | after | Δ | 95% CI of Δ |", "|---|---|---|---|---|---|"]
            for var, r in result["variables"].items():
                for f in _CLASS_FIGURES:
                    b = r[key]
                    lines.append(f"| {md_cell(var)} | {f} | {_fmt(b['before'][f])} | {_fmt(b['after'][f])} | "
                                 f"{b[f'delta_{f}']:+.3f} | {format_interval(b[f'delta_{f}_ci'])} |")
    lines += ["", "Read the two tables together: a gain against the corrected codes that is absent against the "
              "original ones means the new model agrees with the reviewers' decisions (on test rows the review "
              "changed), not that it codes the untouched rows better.", ""]
    return "\n".join(lines)


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def format_interval(pair) -> str:
    """``[low, high]`` of a difference as "[-0.012, +0.034]" (or "—" when there is none)."""
    return "—" if pair is None else f"[{pair[0]:+.3f}, {pair[1]:+.3f}]"
