"""`lexcoder estimate` and `lexcoder regress`: valid prevalence, class-share and regression estimates from
predicted codes."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import pandas as pd
import typer
from rich.table import Table

from ..errors import LexcoderError
from ..estimate import MIN_GOLD_POSITIVES, estimate_regression, estimate_run
from ..io import read_table, write_table
from ..rundir import RunDir, check_output_file
from .common import app, console, friendly

RunArg = Annotated[Path, typer.Argument(help="The run directory whose model coded the corpus.")]
CorpusOpt = Annotated[Path, typer.Option("--corpus", help="The coded corpus: output of `lexcoder predict`.")]
GoldOpt = Annotated[Path, typer.Option("--gold", help="Human-coded random sample of the corpus: id + label (and "
                                        "categorical variable) columns.")]
IdOpt = Annotated[Optional[str], typer.Option("--id-column", help="Id column in both files (default: the run's).")]
WeightsOpt = Annotated[Optional[str], typer.Option(
    "--weights", help="Gold column with each row's inclusion probability, if the sample was not uniform.")]
AlphaOpt = Annotated[float, typer.Option(min=0.001, max=0.5, help="Error level: 0.05 gives 95% intervals.")]
YhatOpt = Annotated[str, typer.Option(help="Model output used: prob (default, more precise) or pred (0/1).")]
OutOpt = Annotated[Optional[Path], typer.Option("--out", "-o", help="Also write the table (csv, parquet, xlsx...).")]
OverwriteOpt = Annotated[bool, typer.Option(help="Replace --out if it exists (never an input).")]


@app.command()
@friendly
def estimate(
    run_dir: RunArg, corpus: CorpusOpt, gold: GoldOpt,
    by: Annotated[Optional[str], typer.Option(help="Corpus column: estimate per value (court, year...).")] = None,
    weights: WeightsOpt = None, alpha: AlphaOpt = 0.05,
    labels: Annotated[Optional[str], typer.Option(
        help="Comma-separated labels and/or categorical variables (default: all of the run's).")] = None,
    id_column: IdOpt = None, yhat: YhatOpt = "prob",
    min_positives: Annotated[int, typer.Option(
        help="Warn below this many human-coded positives (texts of a class).")] = MIN_GOLD_POSITIVES,
    simultaneous: Annotated[bool, typer.Option(
        "--simultaneous/--per-class", help="Intervals of a categorical variable's class shares that hold for all "
        "its classes at once (default), or each class on its own.")] = True,
    out: OutOpt = None, overwrite: OverwriteOpt = False,
) -> None:
    """Prevalence of each label and share of each class in the corpus, with valid confidence intervals (PPI++).

    Shows the naive estimate (model codes only, biased where the model errs), the classical one (human
    sample only) and the PPI++ estimate that corrects the model's codes with the human sample.
    """
    if out:
        check_output_file(out, inputs=[corpus, gold], overwrite=overwrite)
    if not (id_column or RunDir(run_dir).load_config().data.id_column):  # the library names no flags
        raise LexcoderError(f"The run in {run_dir} has no id column; name the column that identifies rows in "
                            "both files with --id-column.")
    table = estimate_run(run_dir, corpus, gold, labels=_split(labels), id_column=id_column, by=by,
                         weight_column=weights, alpha=alpha, yhat=yhat, min_positives=min_positives,
                         simultaneous=simultaneous)
    if "label" in table.columns:
        _show_prevalence(table[table["label"].notna()], by, alpha)
    if "variable" in table.columns:
        _show_shares(table[table["variable"].notna()], by, alpha, simultaneous)
    if not table["reliable"].all():
        console.print("[yellow]![/] Few human-coded positives (or rows): the interval may be unreliable. "
                      "Have more randomly sampled texts coded (see the 'note' column of --out).")
    if out:
        write_table(table, out)
        console.print(f"Wrote {out}.")


@app.command()
@friendly
def regress(
    run_dir: RunArg, corpus: CorpusOpt, gold: GoldOpt,
    outcome: Annotated[str, typer.Option(help="The variable to explain: a label of the run or a corpus column.")],
    on: Annotated[list[str], typer.Option("--on", help="Explanatory variable (repeatable): a label of the run "
                                          "or a corpus column; text columns become indicators.")],
    logistic: Annotated[bool, typer.Option(help="Logistic regression (0/1 outcome) instead of a linear model.")] = False,
    weights: WeightsOpt = None, alpha: AlphaOpt = 0.05, id_column: IdOpt = None, yhat: YhatOpt = "prob",
    out: OutOpt = None, overwrite: OverwriteOpt = False,
) -> None:
    """Regression with coded labels as outcome or predictors, with valid confidence intervals (PPI++).

    Labels are taken from the human codes in --gold and from the model's outputs in --corpus; other
    variables are corpus columns known for every text.
    """
    if out:
        check_output_file(out, inputs=[corpus, gold], overwrite=overwrite)
    cfg = RunDir(run_dir).load_config()
    id_column = id_column or cfg.data.id_column or "id"
    table = estimate_regression(read_table(corpus), read_table(gold), outcome, list(on),
                                labels=list(cfg.data.label_columns), kind="logistic" if logistic else "ols",
                                id_column=id_column, alpha=alpha, yhat=yhat, weight_column=weights,
                                names=(str(corpus), str(gold)), variables=tuple(cfg.data.class_columns))
    _show_regression(table, outcome, logistic, alpha)
    if out:
        write_table(table, out)
        console.print(f"Wrote {out}.")


def _split(text: str | None) -> list[str] | None:
    return [t.strip() for t in text.split(",") if t.strip()] if text else None


def _ci(est: float, low: float, high: float, pct: bool) -> str:
    if pd.isna(est):
        return "—"
    f = (lambda v: f"{v:.1%}") if pct else (lambda v: f"{v:.3g}")
    return f"{f(est)} [{f(low)}, {f(high)}]"


def _show_prevalence(table: pd.DataFrame, by: str | None, alpha: float) -> None:
    _show_estimates(table, by, ["label"], "gold (pos.)",
                    f"Prevalence in the corpus ({1 - alpha:.0%} confidence intervals)")


def _show_shares(table: pd.DataFrame, by: str | None, alpha: float, simultaneous: bool) -> None:
    scope = "for all classes of a variable at once" if simultaneous else "for each class on its own"
    _show_estimates(table, by, ["variable", "class"], "gold (class)",
                    f"Share of each class in the corpus ({1 - alpha:.0%} confidence intervals {scope})")


def _show_estimates(table: pd.DataFrame, by: str | None, keys: list[str], gold_header: str, title: str) -> None:
    """One rich table of estimate rows: ``by`` and ``keys`` columns, then the corpus and gold sizes and the
    naive, classical and PPI++ estimates; a ``!`` marks rows resting on few human-coded positives."""
    out = Table(title=title, title_justify="left")
    names = [c for c in (by, *keys) if c]
    for col in names + ["corpus", gold_header, "naive (model only)", "classical (humans only)",
                        "PPI++ (model + humans)"]:
        out.add_column(col, no_wrap=col in keys, justify="left" if col in names else "right")
    for _, r in table.iterrows():
        flag = "" if r["reliable"] else " [yellow]![/]"
        out.add_row(*(str(r[c]) for c in names), f"{r['n_corpus']:,}", f"{r['n_gold']:,} ({r['gold_positives']})",
                    _ci(r["naive"], r["naive_low"], r["naive_high"], True),
                    _ci(r["classical"], r["classical_low"], r["classical_high"], True),
                    f"[bold]{_ci(r['ppi'], r['ppi_low'], r['ppi_high'], True)}[/]{flag}")
    console.print(out)
    methods = sorted(set(table["method"]) - {""})
    console.print(f"Interval: {', '.join(methods)}. The naive interval ignores the model's errors.")


def _show_regression(table: pd.DataFrame, outcome: str, logistic: bool, alpha: float) -> None:
    kind = "logistic regression (log-odds)" if logistic else "linear model"
    out = Table(title=f"{outcome}: {kind}, {1 - alpha:.0%} confidence intervals", title_justify="left")
    for col in ("term", "naive (model only)", "classical (humans only)", "PPI++ (model + humans)"):
        out.add_column(col, justify="left" if col == "term" else "right")
    for _, r in table.iterrows():
        out.add_row(r["term"], _ci(r["naive"], r["naive_low"], r["naive_high"], False),
                    _ci(r["classical"], r["classical_low"], r["classical_high"], False),
                    f"[bold]{_ci(r['ppi'], r['ppi_low'], r['ppi_high'], False)}[/]")
    console.print(out)
    console.print(f"{table['n_corpus'].iloc[0]:,} corpus rows, {table['n_gold'].iloc[0]:,} human-coded rows.")
