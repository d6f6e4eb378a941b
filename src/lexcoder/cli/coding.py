"""Coding commands: `lexcoder next` (what to code next), `lexcoder add` (a coded batch back) and
`lexcoder sample` (draw and plan the gold sample for estimates)."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from ..errors import ConfigError
from .common import app, console, friendly

RunArg = Annotated[Path, typer.Argument(help="A finished run directory (its model codes the corpus).")]
CorpusOpt = Annotated[Path, typer.Option("--corpus", help="Table of texts (csv, tsv, parquet, jsonl, xlsx, dta).")]
TextOpt = Annotated[Optional[str], typer.Option(help="Text column of the corpus (default: as in the run).")]
IdOpt = Annotated[Optional[str], typer.Option(help="Id column of the corpus (default: as in the run).")]
SeedOpt = Annotated[int, typer.Option(help="Seeds every random choice (same inputs and seed: same texts).")]
OverwriteOpt = Annotated[bool, typer.Option(help="Replace --out if it exists (never an input).")]
FormulasOpt = Annotated[bool, typer.Option(help="Write cells starting with = + - @ as they are (by default a ' is put "
                                                "before them in CSV/XLSX so that a spreadsheet shows them as text).")]


@app.command("next")
@friendly
def next_(
    run_dir: RunArg, corpus: CorpusOpt,
    out: Annotated[Path, typer.Option("--out", "-o", help="The file for the coders (xlsx, csv, ...).")],
    n: Annotated[int, typer.Option("--n", min=1, help="How many texts to choose.")] = 200,
    strategy: Annotated[str, typer.Option(help=(
        "auto (cold start while the run has few codes, then 40% uncertainty, 30% rare, 20% diversity, 10% random), "
        "one of random, uncertainty, rare, diversity, cold_start, keyword, or a mix such as "
        "uncertainty=0.5,rare=0.3,random=0.2."))] = "auto",
    keyword: Annotated[Optional[list[str]], typer.Option(help=(
        "LABEL=REGEX (repeatable): texts matching the regular expression are candidates for that rare label "
        "(a quarter of the batch)."))] = None,
    seed: SeedOpt = 0, text_column: TextOpt = None, id_column: IdOpt = None, overwrite: OverwriteOpt = False,
    keep_formulas: FormulasOpt = False,
) -> None:
    """Choose the texts to code next: where the model is unsure, likely positives of rare labels, new topics.

    Writes --out with the label columns empty and a reason per text; coders fill in the labels, then
    `lexcoder add RUN_DIR FILE` records them.
    """
    from ..active.batches import parse_mix
    from ..active.rounds import next_batch
    t0 = time.perf_counter()
    res = next_batch(run_dir, corpus, out, n=n, strategy=parse_mix(strategy), keywords=_keywords(keyword),
                     seed=seed, text_column=text_column, id_column=id_column, overwrite=overwrite,
                     neutralise_formulas=not keep_formulas)
    mix = ", ".join(f"{k} {v}" for k, v in sorted(res.strategies.items(), key=lambda kv: -kv[1]))
    console.print(f"Batch [bold]{escape(res.batch)}[/]: {res.rows} of {res.pool:,} uncoded texts ({escape(mix)}) "
                  f"written to [bold]{escape(str(out))}[/] ({time.perf_counter() - t0:.1f} s).", highlight=False)
    console.print(f"Fill in the label columns, then: [bold]lexcoder add {escape(str(run_dir))} "
                  f"{escape(str(out))} --out round.parquet[/]", highlight=False)


@app.command()
@friendly
def add(
    run_dir: Annotated[Path, typer.Argument(help="The run whose `lexcoder next` handed out the batch.")],
    coded: Annotated[Optional[Path], typer.Argument(help=(
        "The file from `lexcoder next` with the labels filled in (leave out with --out: only write the training "
        "table of the batches added so far)."))] = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help=(
        "Also write the next round's training table: the run's data file plus every batch added to the run "
        "(a new file; name it as data.path of the next run)."))] = None,
    overwrite: OverwriteOpt = False,
) -> None:
    """Bring a coded batch back: check every code and record it (with its batch and strategy) in the run."""
    from ..active.rounds import add_batch
    res = add_batch(run_dir, coded, training_out=out, overwrite=overwrite)
    positives = ", ".join(f"{k} {v}" for k, v in res.positives.items())
    if coded is not None:
        console.print(f"Added {res.rows} coded texts of batch {escape(', '.join(res.batches))} to "
                      f"{escape(str(run_dir))}" + (f" (positives: {escape(positives)})" if positives else "") + ".",
                      highlight=False)
    if res.training_table is not None:
        console.print(f"Training table for the next round: [bold]{escape(str(out))}[/]. Train on it: "
                      f"[bold]lexcoder run CONFIG --set data.path={escape(str(Path(out).resolve()))} --out "
                      "runs/NEXT[/]", highlight=False)


@app.command()
@friendly
def sample(
    run_dir: RunArg,
    corpus: Annotated[Optional[Path], typer.Option("--corpus", help=(
        "The corpus to estimate on (ideally coded by `lexcoder predict`; otherwise the run codes it)."))] = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Write the sample for the coders here.")] = None,
    n: Annotated[Optional[int], typer.Option("--n", min=1, help="Sample size (default: the plan's, with --width).")]
    = None,
    design: Annotated[str, typer.Option(help=(
        "random (simple random sample), stratified (by the model's outputs, in proportion; recommended) or "
        "oversample (a share from the texts the model codes positive: more human-coded positives; unequal "
        "inclusion probabilities that the estimate corrects for, with intervals wider than stratified ones)."))]
    = "random",
    oversample: Annotated[float, typer.Option(help="oversample: share of the sample from the texts coded positive.")]
    = 0.5,
    width: Annotated[Optional[float], typer.Option(help=(
        "Plan: the 95% interval width wanted per label, e.g. 0.02 for ±1 point."))] = None,
    alpha: Annotated[float, typer.Option(min=0.001, max=0.5, help="Error level of the planned intervals.")] = 0.05,
    labels: Annotated[Optional[str], typer.Option(help="Comma-separated labels to plan for (default: all).")] = None,
    seed: SeedOpt = 0, text_column: TextOpt = None, id_column: IdOpt = None, overwrite: OverwriteOpt = False,
    keep_formulas: FormulasOpt = False,
) -> None:
    """Plan and draw the human-coded gold sample that `lexcoder estimate` needs.

    With --width: how many texts give intervals that narrow, per label. With --out: draw the sample
    (--n texts, or the plan's size) and write it for the coders, with each row's inclusion probability.
    """
    from ..active.sampling import plan_for_run, sample_file
    if width is None and out is None:
        raise ConfigError("Say what to do: --width W plans the sample size, --out FILE (with --corpus) draws the "
                          "sample; both together draw the planned size.")
    chosen = [t.strip() for t in labels.split(",") if t.strip()] if labels else None
    if width is not None:
        from ..io import read_table
        table = read_table(corpus) if corpus is not None else None
        plan = plan_for_run(run_dir, width=width, alpha=alpha, corpus=table, labels=chosen)
        _show_plan(plan, width, alpha)
        if n is None:
            n = int(plan["recommended"].dropna().max()) if plan["recommended"].notna().any() else None
    if out is None:
        return
    if corpus is None:
        raise ConfigError("--out draws a sample of the corpus: give the corpus with --corpus.")
    if n is None:
        raise ConfigError("Give the sample size with --n (or --width to use the planned size).")
    res = sample_file(run_dir, corpus, out, n=n, design=design, oversample=oversample, seed=seed,
                      text_column=text_column, id_column=id_column, overwrite=overwrite,
                      neutralise_formulas=not keep_formulas)
    strata = ", ".join(f"{escape(str(k))} {v}" for k, v in res.strata.items())
    lo, hi = res.inclusion
    console.print(f"Gold sample ({res.design}): {res.rows:,} of {res.corpus:,} texts written to "
                  f"[bold]{escape(str(out))}[/] (strata: {strata}; inclusion probabilities {lo:.3g}–{hi:.3g}).",
                  highlight=False)
    weights = " --weights inclusion_probability" if hi / lo > 1.05 else ""
    console.print(f"Have it coded, then: [bold]lexcoder estimate {escape(str(run_dir))} --corpus CODED_CORPUS "
                  f"--gold {escape(str(out))}{weights}[/]", highlight=False)


def _keywords(items: Optional[list[str]]) -> dict[str, str]:
    out = {}
    for item in items or []:
        label, sep, pattern = item.partition("=")
        if not sep or not label.strip() or not pattern:
            raise ConfigError(f"--keyword {item!r}: write LABEL=REGEX, e.g. --keyword 'arbitration=arbitrat'.")
        out[label.strip()] = pattern
    return out


def _show_plan(plan, width: float, alpha: float) -> None:
    table = Table(title=f"Gold sample size for {1 - alpha:.0%} intervals of width {width:g} (±{width / 2:g})",
                  title_justify="left", box=box.HORIZONTALS, collapse_padding=True, pad_edge=False)
    for col in ("label", "prev.", "ρ²", "humans", "PPI++", "10 pos.", "plan"):
        table.add_column(col, justify="left" if col == "label" else "right", no_wrap=True)
    f = lambda v: "—" if v is None or v != v else f"{int(v):,}"  # noqa: E731
    for _, r in plan.iterrows():
        table.add_row(escape(str(r["label"])), f"{r['prevalence']:.2%}", f"{r['rho2']:.2f}", f(r["n_classical"]),
                      f(r["n_ppi"]), f(r["n_positives"]), f"[bold]{f(r['recommended'])}[/]")
    console.print(table)
    console.print(f"Prevalence from: {escape(str(plan['prevalence_source'].iloc[0]))}. ρ²: squared correlation "
                  "of human codes and model probabilities on the run's held-out texts; PPI++ needs about (1 − ρ²) of "
                  "the human-only size. plan = the larger of PPI++ and 10 expected positives (the estimate flags "
                  "fewer).", highlight=False)
