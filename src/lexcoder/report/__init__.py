"""The run report: ``report.html`` (self-contained, plots embedded) and ``report.md`` (the tables).

Built from a run directory's artifacts only, so it can be rebuilt at any time with ``lexcoder report RUN``.
Needs the ``report`` extra (matplotlib, jinja2).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import LexcoderError
from ..io import write_text
from ..rundir import RunDir, writes_to_run
from ..safety import md_cell, md_fence
from . import context as ctx

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReportPaths:
    html: Path
    md: Path


@writes_to_run("report")
def build_report(run_dir: str | Path | RunDir, *, top_issues: int | None = None) -> ReportPaths:
    """Write ``report.html`` and ``report.md`` into the run directory.

    Parameters
    ----------
    run_dir : a run directory whose training stage has finished
    top_issues : likely coding errors to list from ``label_issues.csv`` (default ``[report] top_issues``)

    Returns
    -------
    the paths of the two files
    """
    env = _environment()
    run = run_dir if isinstance(run_dir, RunDir) else RunDir(Path(run_dir))
    art = ctx.load_artifacts(run)
    top = art["cfg"].report.top_issues if top_issues is None else top_issues
    page = report_context(run, art, top_issues=top)
    write_text(env.get_template("report.md.j2").render(**page), run.report_md)
    page["figures"] = figures(art)
    write_text(env.get_template("report.html.j2").render(**page), run.report_html)
    log.info("Report written to %s", run.report_html)
    return ReportPaths(html=run.report_html, md=run.report_md)


def report_context(run: RunDir, art: dict[str, Any], *, top_issues: int) -> dict[str, Any]:
    """The template variables shared by the HTML and Markdown reports (tables, no figures)."""
    metrics = art["metrics"]
    return {"title": f"lexcoder report — {run.root.resolve().name}", "run_facts": ctx.run_facts(art),
            "dataset": ctx.dataset_summary(run, art), "metric_rows": ctx.metric_rows(metrics),
            "honesty": ctx.honesty_notes(metrics),
            "second_coder": ctx.second_coder_rows(metrics), "bootstrap": metrics.get("bootstrap"),
            "split": metrics.get("split"), "labels": list(metrics["labels"]),
            "variables": ctx.variable_sections(metrics, art["cfg"]),
            "issues": ctx.label_issues(run, top_issues), "audit": ctx.audit_rows(run),
            "corrections": ctx.corrections_rows(run),
            "config_text": run.config.read_text(encoding="utf-8"),
            "manifest_text": ctx.manifest_text(art["manifest"]), "fmt": ctx.fmt}


def figures(art: dict[str, Any]) -> dict[str, Any]:
    """Embedded PNGs: the F1 overview and five panels per label; per categorical variable a confusion heat map
    (``variables``) and, where the predictions hold its columns, per-class precision–recall panels and a
    reliability diagram (``variable_curves``: ``{"pr", "reliability"}`` or None)."""
    from . import plots
    metrics, df, preds = art["metrics"], art["df"], art["preds"]
    preds = preds.set_index("id").loc[df["id"]]  # align with the table's rows
    split = preds["split"].to_numpy()
    evaluated = (split == "cv") | (split == "test")
    where = "out-of-fold" if metrics.get("split") == "cv" else "test"
    per_label = {}
    for lab, m in metrics["labels"].items():
        y, p = df[lab].to_numpy().astype(int), preds[f"{lab}_prob"].to_numpy()
        val = split == "val"
        pred = preds[f"{lab}_pred"].to_numpy()
        per_label[lab] = plots.label_panels(
            y[evaluated], p[evaluated], pred[evaluated], m["threshold"], where=where,
            y_val=y[val] if val.any() else None, p_val=p[val] if val.any() else None,
            reliability=m.get("reliability", []))
    forest = plots.f1_forest([{"label": lab, "f1": m["f1"], "f1_ci": m.get("f1_ci"),
                               "baseline_f1": m.get("baseline", {}).get("f1")}
                              for lab, m in metrics["labels"].items()]) if metrics["labels"] else None
    variables = {name: plots.class_confusion(v["confusion"], v["classes"], title=f"{name}: confusion ({where})")
                 for name, v in (metrics.get("variables") or {}).items()}
    curves = {name: variable_curves(name, v, df, preds, evaluated, where=where, ece_bins=art["cfg"].evaluate.ece_bins)
              for name, v in (metrics.get("variables") or {}).items()}
    return {"overview": forest, "labels": per_label, "variables": variables, "variable_curves": curves}


def variable_curves(name: str, block: dict[str, Any], df, preds, rows: np.ndarray, *, where: str,
                    ece_bins: int = 10) -> dict[str, str] | None:
    """The per-class precision–recall panels and the reliability diagram of one categorical variable, drawn
    from the written probabilities and decisions of the evaluated ``rows`` (``preds`` aligned with ``df``).

    ``None`` when the table or the predictions lack the variable's columns (metrics from elsewhere).
    """
    from . import plots
    classes = list(block["classes"])
    columns = [f"{name}_pred", *(f"{name}_prob_{c}" for c in classes)]
    if name not in df.columns or any(c not in preds.columns for c in columns):
        return None
    human = df[name].astype(str).to_numpy()
    rows = rows & np.isin(human, classes) & preds[columns[0]].notna().to_numpy()
    if not rows.any():
        return None
    index = {c: i for i, c in enumerate(classes)}
    y = np.array([index[c] for c in human[rows]])
    pred = np.array([index[str(c)] for c in preds[columns[0]].to_numpy()[rows]])
    P = preds[columns[1:]].to_numpy(dtype=float)[rows]
    before = block.get("before_temperature") or {}
    return {"pr": plots.class_pr_curves(y, P, pred, classes, where=where),
            "reliability": plots.class_reliability((pred == y).astype(float), P[np.arange(len(y)), pred],
                                                   n_bins=ece_bins, ece=block.get("ece"),
                                                   ece_before=before.get("ece"),
                                                   temperature=block.get("temperature"), where=where)}


def _environment():
    try:
        import jinja2
        import matplotlib  # noqa: F401
    except ImportError as err:
        raise LexcoderError(f"The report needs the 'report' extra ({err.name} is missing): "
                            "pip install 'lexcoder[report]'.") from None
    env = jinja2.Environment(loader=jinja2.PackageLoader("lexcoder", "templates"),
                             autoescape=jinja2.select_autoescape(["html", "html.j2"]),
                             trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined)
    # report.md is not autoescaped: every data string in it goes through `md` (lexcoder.safety.md_cell)
    env.filters.update(md=md_cell, md_fence=md_fence)
    return env


def report_available() -> bool:
    """Whether matplotlib and jinja2 are installed."""
    try:
        _environment()
    except LexcoderError:
        return False
    return True
