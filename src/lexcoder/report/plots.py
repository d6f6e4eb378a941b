"""Figures of the report, drawn with matplotlib's object API (no pyplot state) and embedded as PNG.

Each figure is returned as a ``data:image/png;base64,…`` URI so that report.html is one self-contained file.
"""
from __future__ import annotations

import base64
import io
import textwrap
import unicodedata
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import confusion_matrix, precision_recall_curve, roc_curve

from ..thresholds import f1_curve

DPI = 80
_BLUE, _ORANGE, _GREY = "#1f77b4", "#ff7f0e", "#888888"
_TICKS = (0, 0.5, 1)


def _figure(width: float, height: float, ncols: int = 1, **margins: float):
    """A figure with one row of axes; fixed margins (a layout engine would double the drawing time)."""
    from matplotlib.figure import Figure
    fig = Figure(figsize=(width, height), dpi=DPI)
    fig.subplots_adjust(**{"left": 0.05, "right": 0.99, "bottom": 0.17, "top": 0.88, "wspace": 0.32, **margins})
    return fig, fig.subplots(1, ncols, squeeze=False)[0]


def _unit_axes(ax, **labels: str) -> None:
    """Axes on [0, 1] x [0, 1] with few ticks (tick layout dominates matplotlib's drawing time)."""
    ax.set(xlim=(0, 1), ylim=(0, 1.02), xticks=_TICKS, yticks=_TICKS, **labels)


def plain_text(value) -> str:
    """A data string as matplotlib can draw it: control characters (NUL, newlines ...) become spaces."""
    return "".join(" " if unicodedata.category(c) in ("Cc", "Cs") else c for c in str(value))


def to_data_uri(fig) -> str:
    """PNG of ``fig`` as a base64 data URI."""
    buf = io.BytesIO()
    with warnings.catch_warnings():  # a label in a script the font lacks is drawn as boxes, not an error
        warnings.filterwarnings("ignore", message="Glyph .* missing from font", category=UserWarning)
        fig.savefig(buf, format="png", dpi=DPI, pil_kwargs={"compress_level": 1})  # fast; size hardly matters
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def label_panels(y: np.ndarray, p: np.ndarray, pred: np.ndarray, threshold: float, *, where: str,
                 y_val: np.ndarray | None = None, p_val: np.ndarray | None = None,
                 reliability: Sequence[dict[str, Any]] = ()) -> str:
    """One row of five panels for one label: PR, ROC, confusion matrix, F1 vs threshold, calibration.

    Parameters
    ----------
    y, p : (n,) human labels and model probabilities of the evaluated rows (``where`` names them)
    pred : (n,) the model's 0/1 decisions (pooled cross-validation folds each used their own threshold)
    threshold : the label's decision threshold (of the deployed model)
    y_val, p_val : (m,) validation rows, drawn in the F1-vs-threshold panel where the threshold was tuned
    reliability : reliability-curve bins from metrics.json (``mean_prob``, ``observed``, ``n``)
    """
    fig, ax = _figure(15, 3.1, ncols=5)
    pred = np.asarray(pred).astype(bool)
    both = 0 < y.sum() < len(y)
    if both:
        _pr_panel(ax[0], y, p, pred)
        _roc_panel(ax[1], y, p, pred)
    else:
        for a in ax[:2]:
            a.text(0.5, 0.5, "needs positives and negatives", ha="center", va="center", transform=a.transAxes)
    _confusion_panel(ax[2], y, pred, where)
    _threshold_panel(ax[3], y, p, threshold, where, y_val, p_val)
    _calibration_panel(ax[4], reliability)
    return to_data_uri(fig)


def _pr_panel(ax, y, p, pred) -> None:
    precision, recall, _ = precision_recall_curve(y, p)
    ax.step(recall, precision, where="post", color=_BLUE)
    tp = (pred & (y == 1)).sum()
    ax.plot(tp / max(y.sum(), 1), tp / max(pred.sum(), 1), "o", color=_ORANGE, label="at threshold")
    ax.axhline(y.mean(), color=_GREY, ls=":", label="chance")
    _unit_axes(ax, xlabel="recall", ylabel="precision", title="Precision–recall")
    ax.legend(loc="lower left", fontsize=8)


def _roc_panel(ax, y, p, pred) -> None:
    fpr, tpr, _ = roc_curve(y, p)
    ax.plot(fpr, tpr, color=_BLUE)
    ax.plot(((pred == 1) & (y == 0)).sum() / max((y == 0).sum(), 1),
            ((pred == 1) & (y == 1)).sum() / max(y.sum(), 1), "o", color=_ORANGE)
    ax.plot([0, 1], [0, 1], color=_GREY, ls=":")
    _unit_axes(ax, xlabel="false positive rate", ylabel="true positive rate", title="ROC")


def _confusion_panel(ax, y, pred, where: str) -> None:
    cm = confusion_matrix(y, pred, labels=[0, 1])
    ax.imshow(cm, cmap="Blues")
    for (i, j), v in np.ndenumerate(cm):
        ax.text(j, i, f"{v:,}", ha="center", va="center", color="white" if v > cm.max() / 2 else "black")
    ax.set(xticks=[0, 1], yticks=[0, 1], xticklabels=["0", "1"], yticklabels=["0", "1"],
           xlabel="model", ylabel="human", title=f"Confusion ({where})")


def _threshold_panel(ax, y, p, threshold, where, y_val, p_val) -> None:
    for yy, pp, name, color in ((y, p, where, _BLUE), (y_val, p_val, "validation", _ORANGE)):
        if yy is not None and len(yy) and yy.sum():
            t, f1 = f1_curve(yy, pp)
            ax.plot(t, f1, color=color, label=name)
    ax.axvline(threshold, color="black", ls="--", lw=1, label=f"threshold {threshold:.2f}")
    _unit_axes(ax, xlabel="threshold", ylabel="F1", title="F1 by threshold")
    ax.legend(loc="upper right", fontsize=8)


def _calibration_panel(ax, reliability: Sequence[dict[str, Any]]) -> None:
    ax.plot([0, 1], [0, 1], color=_GREY, ls=":", label="perfect")
    if reliability:
        x = [b["mean_prob"] for b in reliability]
        obs = [b["observed"] for b in reliability]
        size = np.sqrt([b["n"] for b in reliability])
        ax.plot(x, obs, color=_BLUE, lw=1)
        ax.scatter(x, obs, s=8 + 60 * size / size.max(), color=_BLUE, zorder=3, label="bins (size = rows)")
    _unit_axes(ax, xlabel="predicted probability", ylabel="observed share of 1s", title="Calibration")
    ax.legend(loc="upper left", fontsize=8)


def f1_forest(rows: Sequence[dict[str, Any]]) -> str:
    """Per-label F1 with its bootstrap interval, one line per label.

    ``rows``: dicts with ``label``, ``f1`` and ``f1_ci`` ([low, high] or None), optionally ``baseline_f1``
    (the F1 of the trivial rule, drawn as a grey bar so the model's F1 is read against it).
    """
    height = 0.9 + 0.32 * len(rows)
    fig, (ax,) = _figure(7, height, left=0.3, right=0.97, bottom=0.55 / height, top=1 - 0.15 / height)
    ys = np.arange(len(rows))[::-1]
    for y_pos, r in zip(ys, rows):
        if r.get("baseline_f1") is not None:
            ax.plot(r["baseline_f1"], y_pos, "|", color=_GREY, ms=14, mew=2)
        if r.get("f1_ci"):
            ax.plot(r["f1_ci"], [y_pos, y_pos], color=_BLUE, lw=2)
        ax.plot(r["f1"], y_pos, "o", color=_BLUE)
    xlabel = "F1 (95% bootstrap interval)"
    if any(r.get("baseline_f1") is not None for r in rows):
        xlabel += "; grey bar: F1 of always 1"
    ax.set(yticks=ys, xlim=(0, 1), xticks=np.linspace(0, 1, 6), xlabel=xlabel)
    # label names are data: drawn as plain text, never parsed as mathtext ("a$b$" would fail or mangle)
    ax.set_yticklabels([plain_text(r["label"]) for r in rows], parse_math=False)
    ax.grid(axis="x", alpha=0.3)
    return to_data_uri(fig)


CLASS_NAME_WIDTH = 18  # characters per line of a class name on the heat map's rows (two lines at most)


def class_name_label(name: Any, *, width: int = CLASS_NAME_WIDTH, lines: int = 2) -> str:
    """A class name as an axis label: plain text wrapped to ``lines`` lines of ``width`` characters, the rest
    cut with "…"."""
    wrapped = textwrap.wrap(plain_text(name), width, break_long_words=True) or [""]
    if len(wrapped) > lines:
        wrapped = wrapped[:lines - 1] + [wrapped[lines - 1][:width - 1] + "…"]
    return "\n".join(wrapped)


def class_confusion(confusion: Sequence[Sequence[int]], classes: Sequence[str], *, title: str) -> str:
    """The k × k confusion heat map of a categorical variable (rows: human codes, columns: the model's).

    Cells are shaded by the share of their row (of the texts the humans put in a class, the share the model put
    in each; the diagonal is each class's recall), so that a small class reads as clearly as a large one; the
    counts are written in the cells (up to 20 classes; beyond that the cells are too small to read). Class
    names are wrapped to two lines on the rows and cut to one slanted line on the columns.

    Parameters
    ----------
    confusion : (k, k) counts, in the order of ``classes`` (metrics.json ``variables.<name>.confusion``)
    classes : the k class names
    title : the figure's title
    """
    cm = np.asarray(confusion, dtype=float)
    k = len(classes)
    rows = [class_name_label(c) for c in classes]
    cols = [class_name_label(c, width=2 * CLASS_NAME_WIDTH - 4, lines=1) for c in classes]
    cell = 0.5 if k <= 10 else max(0.22, 5.0 / k)  # inches per cell: large enough to read, bounded in total
    font = 9 if k <= 10 else 7
    char = 0.068 * font / 9  # inches per character, roughly
    left = 0.75 + char * max(len(line) for n in rows for line in n.split("\n"))
    bottom = 0.75 + 0.71 * char * max(len(n) for n in cols)  # the column names slant at 45 degrees
    top, right = 0.45, 1.0
    width, height = left + cell * k + right, bottom + cell * k + top
    fig, (ax,) = _figure(width, height, left=left / width, right=1 - right / width, bottom=bottom / height,
                         top=1 - top / height)
    shares = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1, aspect="equal")
    if k <= 20:
        for (i, j), v in np.ndenumerate(cm):
            ax.text(j, i, f"{int(v):,}", ha="center", va="center", fontsize=font - 1,
                    color="white" if shares[i, j] > 0.5 else "black")
    ticks = np.arange(k)
    ax.set(xticks=ticks, yticks=ticks)
    ax.set_title(plain_text(title), fontsize=font + 2, parse_math=False)
    ax.set_xlabel("model", fontsize=font + 1)
    ax.set_ylabel("human", fontsize=font + 1)
    # class names are data: drawn as plain text, never parsed as mathtext
    ax.set_xticklabels(cols, rotation=45, ha="right", rotation_mode="anchor", fontsize=font, parse_math=False)
    ax.set_yticklabels(rows, fontsize=font, parse_math=False)
    bar = fig.add_axes([1 - (right - 0.15) / width, bottom / height, 0.15 / width, cell * k / height])
    fig.colorbar(image, cax=bar, ticks=_TICKS).set_label("share of the human class", fontsize=font)
    bar.tick_params(labelsize=font)
    return to_data_uri(fig)


def class_pr_curves(y: np.ndarray, P: np.ndarray, pred: np.ndarray, classes: Sequence[str], *, where: str) -> str:
    """Per-class precision–recall curves of a categorical variable, each class against the rest, one small
    panel per class (a grid of up to six columns: readable with 7 classes and with 37).

    Each panel shows the class's curve over its probability column, the dot where the decisions made put it
    (precision and recall of ``pred``, after any class bias) and the class's share of the rows (the precision
    of guessing), with its average precision in the title.

    Parameters
    ----------
    y : (n,) human codes as class indices into ``classes``
    P : (n, k) the written class probabilities of the same rows
    pred : (n,) the decisions made (class indices)
    classes : the k class names
    where : which rows these are ("test", "out-of-fold"), for the title
    """
    from matplotlib.figure import Figure
    from sklearn.metrics import average_precision_score
    k = len(classes)
    ncols = min(k, 4 if k <= 8 else 6)
    nrows = -(-k // ncols)
    panel = 2.3  # inches per panel
    width, height = ncols * panel + 0.4, nrows * (panel + 0.35) + 0.8
    fig = Figure(figsize=(width, height), dpi=DPI)
    fig.subplots_adjust(left=0.5 / width, right=1 - 0.15 / width, bottom=0.45 / height, top=1 - 0.85 / height,
                        wspace=0.35, hspace=0.6)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    fig.suptitle(plain_text(f"Precision–recall per class, one against the rest ({where}); dot: the decisions made"),
                 fontsize=10)
    for c, ax in enumerate(axes):
        if c >= k:
            ax.set_axis_off()
            continue
        _class_pr_panel(ax, y == c, P[:, c], pred == c)
        ap = average_precision_score(y == c, P[:, c]) if (y == c).any() else None
        name = class_name_label(classes[c], width=26, lines=1)
        ax.set_title(f"{name}\nAP {ap:.2f}, {int((y == c).sum()):,} texts" if ap is not None else f"{name}\nno texts",
                     fontsize=9, parse_math=False)
    return to_data_uri(fig)


def _class_pr_panel(ax, truth: np.ndarray, p: np.ndarray, chosen: np.ndarray) -> None:
    if truth.any() and not truth.all():
        precision, recall, _ = precision_recall_curve(truth, p)
        ax.step(recall, precision, where="post", color=_BLUE, lw=1.2)
        tp = (chosen & truth).sum()
        ax.plot(tp / truth.sum(), tp / max(chosen.sum(), 1), "o", color=_ORANGE, ms=5)
        ax.axhline(truth.mean(), color=_GREY, ls=":", lw=1)
    ax.set(xlim=(0, 1), ylim=(0, 1.02), xticks=_TICKS, yticks=_TICKS)
    ax.tick_params(labelsize=8)
    ax.set_xlabel("recall", fontsize=8, labelpad=1)
    ax.set_ylabel("precision", fontsize=8, labelpad=1)


def class_reliability(correct: np.ndarray, p_chosen: np.ndarray, *, n_bins: int = 10, ece: float | None = None,
                      ece_before: float | None = None, temperature: float | None = None, where: str = "test") -> str:
    """Reliability diagram of a categorical variable: the probability of the chosen class against the share
    of texts where it is the human coders' class, per equal-width bin (dot size: rows in the bin).

    Parameters
    ----------
    correct : (n,) 1 where the chosen class is the human's, else 0
    p_chosen : (n,) the written probability of the chosen class
    n_bins : equal-width bins on [0, 1]
    ece, ece_before : the ECE with the written probabilities and before temperature scaling (for the legend)
    temperature : the temperature of the deployed rule (None: not recorded)
    where : which rows these are, for the title
    """
    from ..stats import reliability_curve
    fig, (ax,) = _figure(4.2, 3.9, left=0.16, right=0.96, bottom=0.13, top=0.86)
    ax.plot([0, 1], [0, 1], color=_GREY, ls=":", label="perfect")
    bins = reliability_curve(correct, p_chosen, n_bins=n_bins)
    if bins:
        x, obs = [b["mean_prob"] for b in bins], [b["observed"] for b in bins]
        size = np.sqrt([b["n"] for b in bins])
        label = "bins (size = rows)" if ece is None else f"ECE {ece:.3f}"
        if ece_before is not None and temperature not in (None, 1.0):
            label += f" (before T = {temperature:.2f}: {ece_before:.3f})"
        ax.plot(x, obs, color=_BLUE, lw=1)
        ax.scatter(x, obs, s=8 + 60 * size / size.max(), color=_BLUE, zorder=3, label=label)
    _unit_axes(ax, xlabel="probability of the chosen class", ylabel="share where it is the human's class")
    ax.set_title(f"Calibration of the chosen class ({where})", fontsize=10)
    ax.legend(loc="upper left", fontsize=8)
    return to_data_uri(fig)
