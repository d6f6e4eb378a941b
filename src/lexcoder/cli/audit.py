"""Audit commands: `lexcoder audit` (review queue), `lexcoder corrections apply` (ledger) and
`lexcoder corrections report` (a run against the run retrained on the corrected codes), for 0/1 labels
and categorical variables alike.

Each command calls one library function, then rebuilds the run's report when the run has one: the
command layer decides what to rebuild, the audit functions never call the report stage.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from ..errors import LexcoderError
from ..rundir import RunDir
from .common import app, console, friendly

corrections_app = typer.Typer(help="Record reviewed coding decisions in the corrections ledger.",
                              no_args_is_help=True)
app.add_typer(corrections_app, name="corrections")

RunArg = Annotated[Path, typer.Argument(help="A finished run directory (lexcoder run / lexcoder demo).",
                                        exists=True, file_okay=False)]


@app.command()
@friendly
def audit(
    run_dir: RunArg,
    folds: Annotated[Optional[int], typer.Option(help="Cross-fitting folds: each text is scored by a model "
                                                      "trained on the other folds (default: \\[audit] folds, "
                                                      "5).")] = None,
    model: Annotated[Optional[str], typer.Option(help="Model family for cross-fitting: tfidf, encoder, llm, "
                                                      "or blend (fine-tuned MiniLM averaged with TF-IDF; slow "
                                                      "on a CPU: its time estimate is shown before it starts) "
                                                      "(default: \\[audit] model, else the run's).")] = None,
    method: Annotated[Optional[str], typer.Option(help="Score: calibrated (default: probability of the human "
                                                       "code, temperature-scaled per label), loss, cleanlab or "
                                                       "posterior.")] = None,
    order: Annotated[Optional[str], typer.Option(help="After the conflicting duplicates: interleave (default: "
                                                      "labels in turn by expected wrong codes) or score (all "
                                                      "labels by score).")] = None,
    quota: Annotated[Optional[int], typer.Option(help="At most N flagged rows per label in the queue.")] = None,
    block_columns: Annotated[Optional[str], typer.Option(
        help="Comma-separated columns naming a document, coder or batch, to find clusters of flags in "
             "(default: the document/group column).")] = None,
    top: Annotated[Optional[int], typer.Option(help="Keep only the N most likely errors in the CSV.")] = None,
    label: Annotated[Optional[str], typer.Option(help="Only this label or categorical variable (writes "
                                                      "label_issues_<label>.csv; characters unsafe in file "
                                                      "names are replaced).")] = None,
    isolate_test: Annotated[Optional[bool], typer.Option(
        "--isolate-test/--no-isolate-test",
        help="Keep the run's test rows out of the cross-fitting models' training data, so corrections "
             "carry no information from the test codes into a retrained run's evaluation (default: "
             "\\[audit] isolate_test, on).")] = None,
    keep_formulas: Annotated[bool, typer.Option(
        "--keep-formulas",
        help="Write cells starting with = + - @ as they are. By default they get a leading ' so that Excel "
             "shows them as text instead of running them as formulas ('corrections apply' removes it).")]
    = False,
) -> None:
    """Rank likely human coding errors with out-of-fold predictions; writes label_issues.csv.

    Options not given come from the run's \\[audit] config section (its defaults where it has none).
    """
    from ..audit import audit_run
    result = audit_run(run_dir, n_folds=folds, kind=model, method=method, top=top, label=label,
                       isolate_test=isolate_test, neutralise_formulas=not keep_formulas, order=order, quota=quota,
                       block_columns=[c.strip() for c in block_columns.split(",") if c.strip()] if block_columns
                       else None)
    show_summary(result.summary)
    for block in result.summary.get("blocks", []):
        console.print(f"Cluster of flags: {escape(block['description'])}")
    show_queue(result.view.head(15))
    path = escape(str(result.csv_path))
    how = ("'decision' (keep/flip)" if "new_value" not in result.view else
           "'decision' (0/1 labels: keep/flip; categorical variables: keep, or change with the class in "
           "'new_value', empty = the suggested class)")
    console.print(f"Review queue: [bold]{path}[/] ({len(result.view)} rows). Fill in {how} and 'note', then "
                  f"run [bold]lexcoder corrections apply {escape(str(run_dir))} {path} --reviewer NAME[/]")
    run = RunDir(run_dir)
    refresh_report(run_dir, f"The audit finished and its results are kept ({result.csv_path.name}, "
                            f"{run.label_issues_table.name}, {run.audit_summary.name})", before="the audit")


@corrections_app.command("apply")
@friendly
def apply(
    run_dir: RunArg,
    reviewed: Annotated[Path, typer.Argument(help="The reviewed label_issues.csv (or .xlsx).", exists=True,
                                             dir_okay=False)],
    reviewer: Annotated[str, typer.Option(help="Who reviewed the codes (recorded in the ledger).")],
    ledger: Annotated[Path, typer.Option(help="Append-only corrections ledger (created if missing).")]
    = Path("corrections.csv"),
) -> None:
    """Append the decisions of a reviewed queue (keep/flip; keep/change for categorical variables) to the
    corrections ledger (idempotent)."""
    from ..audit import apply_review
    res = apply_review(run_dir, reviewed, reviewer=reviewer, ledger=ledger)
    flips = int((res.added["old_value"].astype(str) != res.added["new_value"].astype(str)).sum())
    entries = "entry" if len(res.added) == 1 else "entries"
    changed = "changed" if res.summary and res.summary.get("variables") else "flipped"
    console.print(f"Ledger {escape(str(res.ledger))}: {len(res.added)} new {entries} ({flips} {changed}, "
                  f"{len(res.added) - flips} kept); {res.skipped} already recorded.")
    if res.summary:
        show_summary(res.summary)
    console.print(f"Retrain on the corrected codes: [bold]lexcoder run CONFIG --corrections {ledger} "
                  "--out runs/NEW[/]")
    if res.summary:  # the report's audit table shows the reviewed / flipped counts
        refresh_report(run_dir, f"The review is recorded (ledger {res.ledger}, {RunDir(run_dir).audit_summary.name})",
                       before="this review")


@corrections_app.command("report")
@friendly
def report(
    before: RunArg,
    after: Annotated[Path, typer.Argument(help="The run retrained with --corrections.", exists=True,
                                          file_okay=False)],
    bootstrap: Annotated[int, typer.Option(help="Resamples for the paired confidence intervals (0: none).")]
    = 1000,
) -> None:
    """Compare a run with the run retrained on corrected codes: F1 (0/1 labels), accuracy and macro-F1
    (categorical variables) against the original and corrected codes."""
    from ..audit.compare import compare_runs
    res = compare_runs(before, after, bootstrap=bootstrap)
    changes = [*res["corrections"].values(), *res.get("variables", {}).values()]
    changed = sum(c["changed"] for c in changes)
    in_test = sum(c["changed_in_test"] for c in changes)
    console.print(f"{changed} code(s) changed by the review ({in_test} in the {res['test_rows']:,} test rows).")
    for key in ("original", "corrected"):
        if key in res:  # the 0/1 labels
            show_label_comparison(res, key)
        if res.get("variables"):
            show_variable_comparison(res["variables"], key)
    md, js = RunDir(after).corrections_report_md, RunDir(after).corrections_report_json
    console.print(f"Written: [bold]{escape(str(md))}[/] and {js.name}")
    refresh_report(after, f"The comparison is kept ({md.name} and {js.name})",
                   before="the comparison")  # the report gains the "Effect of the corrections" table


def show_label_comparison(res: dict, key: str) -> None:
    """F1 of the 0/1 labels and macro-F1 before/after, against the ``key`` codes."""
    from ..audit.compare import format_interval
    table = Table(title=f"Test F1 against the {key} codes (Δ = after − before, 95% paired bootstrap CI)",
                  title_justify="left")
    for col in ("label", "changed", "before", "after", "Δ", "CI of Δ"):
        table.add_column(col, justify="left" if col == "label" else "right", no_wrap=col == "label")
    for lab, r in res[key]["labels"].items():
        table.add_row(escape(lab), str(res["corrections"][lab]["changed"]), f"{r['before']['f1']:.3f}",
                      f"{r['after']['f1']:.3f}", f"{r['delta_f1']:+.3f}", format_interval(r["delta_f1_ci"]))
    m = res[key]["macro_f1"]
    table.add_row("macro", "", f"{m['before']:.3f}", f"{m['after']:.3f}", f"{m['delta']:+.3f}",
                  format_interval(m["delta_ci"]), style="bold")
    console.print(table)


def show_variable_comparison(variables: dict, key: str) -> None:
    """Accuracy and macro-F1 of the categorical variables before/after, against the ``key`` codes."""
    table = Table(title=f"Categorical variables: test accuracy and macro-F1 against the {key} codes "
                        "(Δ = after − before, 95% paired bootstrap CI)", title_justify="left")
    for col in ("variable", "changed", "figure", "before", "after", "Δ", "CI of Δ"):
        table.add_column(col, justify="left" if col in ("variable", "figure") else "right", no_wrap=col == "variable")
    from ..audit.compare import format_interval
    for var, r in variables.items():
        for figure in ("accuracy", "macro_f1"):
            b = r[key]
            table.add_row(escape(var), str(r["changed"]), figure, _num(b["before"][figure]), _num(b["after"][figure]),
                          f"{b[f'delta_{figure}']:+.3f}", format_interval(b[f"delta_{figure}_ci"]))
    console.print(table)


def _num(value) -> str:
    return "—" if value is None else f"{value:.3f}"


def refresh_report(run_dir: Path, kept: str, *, before: str) -> None:
    """Rebuild the run's report after a command changed what it shows; a run without a report gets none.

    Parameters
    ----------
    run_dir : the run whose report to rebuild
    kept : what the command wrote and keeps even if the report fails (starts the error message)
    before : what the report does not show yet if it fails ("the audit")

    Raises
    ------
    LexcoderError
        If the report cannot be rebuilt (disk full, a damaged artifact): report.html and report.md are
        then left as they were, and the message says that the command's own results are kept.
    """
    from ..report import build_report, report_available
    run = RunDir(Path(run_dir))
    if not run.report_html.is_file() or not report_available():
        return
    try:
        # both files or neither: a report.md that disagrees with report.html would mislead
        with run.lock("report"), run.all_or_nothing([run.report_html, run.report_md]):
            paths = build_report(run)
    except (LexcoderError, OSError) as err:
        reason = f"{err.strerror}: {err.filename}" if isinstance(err, OSError) and err.strerror else str(err)
        raise LexcoderError(f"{kept}, but the report could not be rebuilt: {reason.rstrip('.')}. Until it is, "
                            f"{run.report_html.name} shows the run as it was before {before}; rebuild it with "
                            f"`lexcoder report {run_dir}`.") from None
    console.print(f"Report updated: {escape(str(paths.html))}")


def show_summary(summary: dict) -> None:
    """Per-label table: issues, conflicting duplicate groups, estimated noise, reviewed/flipped, out-of-fold
    agreement; the caption gives the conflicting duplicate groups over all labels."""
    oof = summary.get("out_of_fold", {})
    # data strings (labels, ids, texts, paths) are escaped: rich would read "[...]" in them as markup
    table = Table(title=f"Audit of {escape(summary['run'])} ({summary['settings']['folds']}-fold out-of-fold, "
                        f"{summary['settings']['kind']})", title_justify="left",
                  caption=_conflict_caption(summary), caption_justify="left")
    for col in ("label", "n pos", "issues", "confl. dup. groups", "est. noise", "reviewed", "flipped",
                "AP before", "AP after"):
        table.add_column(col, justify="left" if col == "label" else "right", no_wrap=col == "label")
    f = lambda v, fmt="{:.3f}": "—" if v is None else fmt.format(v)  # noqa: E731
    for lab, m in summary["labels"].items():
        before = (oof.get("before") or {}).get("labels", {}).get(lab, {})
        after = (oof.get("after") or {}).get("labels", {}).get(lab, {})
        table.add_row(escape(lab), str(m["positives"]), str(m["in_queue"]),
                      str(m.get("conflicting_duplicate_groups", "—")), f(m["estimated_noise_rate"], "{:.2%}"),
                      str(m["reviewed"]), str(m["flipped"]), f(before.get("average_precision")),
                      f(after.get("average_precision")))
    if summary["labels"] or not summary.get("variables"):
        console.print(table)
    if summary.get("variables"):
        show_variable_summary(summary)


def show_variable_summary(summary: dict) -> None:
    """Per categorical variable: rows, issues, conflicting duplicates, estimated noise, reviewed/changed, and
    out-of-fold accuracy and macro-F1 against the codes before → after the recorded corrections."""
    table = Table(title=f"Categorical variables ({summary['settings']['folds']}-fold out-of-fold, "
                        f"{summary['settings']['kind']})", title_justify="left")
    for col in ("variable", "rows", "issues", "confl. dup. groups", "est. noise", "reviewed", "changed",
                "accuracy", "macro-F1"):
        table.add_column(col, justify="left" if col == "variable" else "right", no_wrap=col == "variable")
    f = lambda v, fmt="{:.3f}": "—" if v is None else fmt.format(v)  # noqa: E731
    for var, m in summary["variables"].items():
        oof = m.get("out_of_fold", {})
        before, after = oof.get("before") or {}, oof.get("after")

        def figure(name: str) -> str:
            return f(before.get(name)) + ("" if after is None else f" → {f(after.get(name))}")
        table.add_row(escape(var), str(m["rows"]), str(m["in_queue"]),
                      str(m.get("conflicting_duplicate_groups", "—")), f(m["estimated_noise_rate"], "{:.2%}"),
                      str(m["reviewed"]), str(m["changed"]), figure("accuracy"), figure("macro_f1"))
    console.print(table)


def _conflict_caption(summary: dict) -> str | None:
    if "conflicting_duplicate_groups" not in summary:  # a summary written by an older lexcoder
        return None
    return (f"Conflicting duplicate groups (identical texts coded differently on at least one label): "
            f"{summary['conflicting_duplicate_groups']} ({summary['conflicting_duplicate_rows']} rows); per "
            "label: the groups coded differently on that label.")


def show_queue(view) -> None:
    """The first rows of the queue (with categorical variables: the suggested value and its probability)."""
    suggested = "suggested_value" in view
    table = Table(title="Most likely coding errors", title_justify="left")
    for col in ("rank", "id", "label", "human", "p(model)", *(("suggested", "p(sugg.)") if suggested else ()), "text"):
        table.add_column(col, overflow="fold" if col == "text" else "ellipsis")
    for r in view.itertuples():
        text = r.text if len(r.text) <= 90 else r.text[:87] + "..."
        extra = (escape(str(r.suggested_value)), f"{r.suggested_probability:.2f}") if suggested else ()
        table.add_row(str(r.rank), escape(str(r.id)), escape(r.label), escape(str(r.human_value)),
                      f"{r.model_probability:.2f}", *extra, escape(text))
    console.print(table)
