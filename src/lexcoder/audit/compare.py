"""Did the reviewed corrections help? A run against the run retrained on the corrected codes.

``metrics.json`` of a run retrained with ``--corrections`` scores its model against the *corrected* codes,
while the earlier run was scored against the original ones, so subtracting the two mixes two changes: a
better model, and a different answer key. :func:`compare_runs` separates them. It scores both runs' test
predictions on the same test rows against **both** answer keys — the original human codes and the
corrected ones — and gives each difference a paired bootstrap interval (the same documents resampled for
both runs).
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
from ..stats import bootstrap_difference, confusion_counts, count_metrics
from ..ledger import training_table

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
    and ``delta_ci`` of F1.

    Raises
    ------
    LexcoderError
        If the runs are on different data, labels or test rows, or a run has not finished.
    """
    a, b = RunDir(Path(before)), RunDir(Path(after))
    labels = _same_labels(a, b)
    original, corrected = _answer_keys(a, b, labels)
    pred, test_ids = _test_decisions(a, b, labels)
    keys = {"original": original.loc[test_ids, labels].to_numpy(),
            "corrected": corrected.loc[test_ids, labels].to_numpy()}
    groups = original.loc[test_ids, "group"].to_numpy() if "group" in original else None
    out: dict[str, Any] = {
        "before": str(a.root), "after": str(b.root), "test_rows": len(test_ids),
        "corrections": _changes(original, corrected, labels, set(test_ids)),
        "resampling": {"resamples": bootstrap, "seed": seed, "unit": "group" if groups is not None else "row"},
    }
    for key, Y in keys.items():
        out[key] = _compare(Y, pred["before"], pred["after"], labels, groups, bootstrap, seed)
    if write:
        write_json(out, b.corrections_report_json)
        write_text(render_markdown(out), b.corrections_report_md)
    return out


def _same_labels(a: RunDir, b: RunDir) -> list[str]:
    la, lb = a.load_config().data.label_columns, b.load_config().data.label_columns
    if list(la) != list(lb):
        raise LexcoderError(f"The runs code different labels ({a.root}: {', '.join(la)}; {b.root}: "
                            f"{', '.join(lb)}): compare runs made from the same config.")
    return list(lb)


def _answer_keys(a: RunDir, b: RunDir, labels: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
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
    corrected = training_table(b.root, original, labels)
    return original.set_index(original["id"].astype(str)), corrected.set_index(corrected["id"].astype(str))


def _test_decisions(a: RunDir, b: RunDir, labels: list[str]) -> tuple[dict[str, np.ndarray], list[str]]:
    """Both runs' 0/1 test decisions (out-of-fold rows in k-fold mode) on their common, identical test rows."""
    preds = []
    for run in (a, b):
        if not run.predictions.is_file():
            raise LexcoderError(f"{run.predictions} is missing: finish the run first (`lexcoder run ... --resume`).")
        p = pd.read_parquet(run.predictions)
        p = p[p["split"].isin(["test", "cv"])]
        preds.append(p.set_index(p["id"].astype(str))[[f"{lab}_pred" for lab in labels]].astype(int))
    ids = [set(p.index) for p in preds]
    if ids[0] != ids[1]:
        raise LexcoderError(
            f"The two runs were tested on different rows ({len(ids[0])} vs {len(ids[1])} test rows, "
            f"{len(ids[0] ^ ids[1])} differ): a comparison needs the same test set. Retrain with the "
            "same [split] settings (method, seed, fractions) as the first run.")
    if not ids[1]:
        raise LexcoderError(f"{b.predictions} has no test rows to compare on.")
    test_ids = sorted(ids[1])
    return {"before": preds[0].loc[test_ids].to_numpy(), "after": preds[1].loc[test_ids].to_numpy()}, test_ids


def _changes(original: pd.DataFrame, corrected: pd.DataFrame, labels: list[str], test: set[str]
             ) -> dict[str, dict[str, int]]:
    in_test = original.index.isin(list(test))
    out = {}
    for lab in labels:
        changed = original[lab].to_numpy() != corrected.loc[original.index, lab].to_numpy()
        out[lab] = {"changed": int(changed.sum()), "changed_in_test": int((changed & in_test).sum()),
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
    for lab, c in result["corrections"].items():
        lines.append(f"| {md_cell(lab)} | {c['changed']} | {c['changed_in_test']} | {c['changed_in_training']} |")
    for key, title in (("original", "against the original codes"), ("corrected", "against the corrected codes")):
        block = result[key]
        lines += ["", f"## F1 {title}", "", "| label | before | after | Δ | 95% CI of Δ |", "|---|---|---|---|---|"]
        for lab, r in block["labels"].items():
            lines.append(f"| {md_cell(lab)} | {r['before']['f1']:.3f} | {r['after']['f1']:.3f} | "
                         f"{r['delta_f1']:+.3f} | {format_interval(r['delta_f1_ci'])} |")
        m = block["macro_f1"]
        lines.append(f"| **macro** | {m['before']:.3f} | {m['after']:.3f} | {m['delta']:+.3f} | "
                     f"{format_interval(m['delta_ci'])} |")
    lines += ["", "Read the two tables together: a gain against the corrected codes that is absent against the "
              "original ones means the new model agrees with the reviewers' decisions (on test rows the review "
              "changed), not that it codes the untouched rows better.", ""]
    return "\n".join(lines)


def format_interval(pair) -> str:
    """``[low, high]`` of a difference as "[-0.012, +0.034]" (or "—" when there is none)."""
    return "—" if pair is None else f"[{pair[0]:+.3f}, {pair[1]:+.3f}]"
