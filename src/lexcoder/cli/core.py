"""Core commands: demo, init, run, predict."""
from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Annotated, Literal, Optional

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from ..config import ModelKind, example_config, load_config
from ..demo import CITATION, demo_config
from ..evaluate import SMALL_SUPPORT, flagged_labels
from ..pipeline import RunResult, run_pipeline
from ..predict import predict_file
from ..repeats import SPREAD_NOTE, run_repeats, spread_cells, summary_rows
from .common import app, console, friendly

OutOpt = Annotated[Path, typer.Option("--out", "-o", help="Run directory to create.")]
ResumeOpt = Annotated[bool, typer.Option("--resume", help="Continue an interrupted run in --out.")]
SetOpt = Annotated[Optional[list[str]], typer.Option("--set", help="Override a config key: section.key=value (repeatable).")]
CorrectionsOpt = Annotated[Optional[Path], typer.Option(help="Corrections ledger (lexcoder corrections apply): train on the reviewed codes.", exists=True, dir_okay=False)]


@app.command()
@friendly
def demo(
    out: OutOpt = Path("runs/demo"),
    model: Annotated[str, typer.Option(help="tfidf (fast default) or an encoder name such as minilm.")] = "tfidf",
    resume: ResumeOpt = False,
    set_: SetOpt = None,
    corrections: CorrectionsOpt = None,
) -> None:
    """Run the whole pipeline on the bundled legal dataset (unfair clauses in Terms of Service)."""
    from ..config import apply_overrides, config_from_dict
    cfg = demo_config(model=model)
    if set_:
        raw = cfg.model_dump(mode="json", exclude_none=True)
        apply_overrides(raw, set_, flag="--set")
        cfg = config_from_dict(raw, "--set")
    console.print(f"[bold]lexcoder demo[/] — {CITATION}", highlight=False)
    _run_and_show(cfg, out, resume, corrections)


@app.command()
@friendly
def init(path: Annotated[Path, typer.Argument(help="Config file to write.")] = Path("lexcoder.toml"),
         force: Annotated[bool, typer.Option(help="Overwrite an existing file.")] = False,
         kind: Annotated[ModelKind, typer.Option(help="Model family to select; the file lists its settings.")]
         = "tfidf") -> None:
    """Write a commented example configuration to edit (missing folders on its path are created)."""
    from ..errors import ConfigError
    from ..io import write_text
    if path.is_dir():
        raise ConfigError(f"{path} is a folder; give a file name, e.g. lexcoder init {path / 'lexcoder.toml'}")
    if path.exists() and not force:
        raise ConfigError(f"{path} exists; pass --force to overwrite it.")
    blocker = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise ConfigError(f"{blocker} is a file, so it cannot hold {path}. Choose another path.")
    new_folder = not path.parent.exists()
    write_text(example_config(kind), path)  # atomic: an interrupted init leaves no half-written config
    if new_folder:
        console.print(f"Created the folder {path.parent}.")
    console.print(f"Wrote {path}. Edit \\[data] (path, text_column, label_columns), then: "
                  f"[bold]lexcoder run {path} --out runs/exp1[/]")


@app.command()
@friendly
def run(config: Annotated[Path, typer.Argument(help="TOML config (see `lexcoder init`).")],
        out: OutOpt = Path("runs/run"), resume: ResumeOpt = False, set_: SetOpt = None,
        corrections: CorrectionsOpt = None,
        repeat: Annotated[int, typer.Option(min=1, help=(
            "Run N times (N >= 2) into --out/repeat-1 … repeat-N, split, model and bootstrap seeds shifted by "
            "0 … N-1, and show each figure's mean ± sd across the repeats (1: one run, as without it)."))] = 1,
        processes: Annotated[int, typer.Option(min=1, help=(
            "Fine-tune data-parallel in N processes, one per GPU (on a machine without GPUs: CPU processes); "
            "starts `accelerate launch --num_processes N -m lexcoder run ...`. Encoder and LLM models only."))] = 1,
        ) -> None:
    """Run the pipeline for your own table: load → clean → split → train → thresholds → evaluate."""
    cfg = load_config(config, set_, flag="--set")
    if processes > 1 or _launched():
        argv = ["run", str(config), "--out", str(out), *(["--resume"] if resume else []),
                *[arg for s in set_ or [] for arg in ("--set", s)],
                *(["--corrections", str(corrections)] if corrections else [])]
        _run_parallel(cfg, argv, out=out, resume=resume, corrections=corrections, repeat=repeat,
                      processes=processes)
    elif repeat == 1:
        _run_and_show(cfg, out, resume, corrections)
    else:
        _repeat_and_show(cfg, out, repeat, resume, corrections)


@app.command()
@friendly
def predict(
    run_dir: Annotated[Optional[Path], typer.Argument(help="A finished run directory.")] = None,
    input: Annotated[Optional[Path], typer.Argument(
        help="Table of texts to code (csv, tsv, parquet, jsonl, xlsx, dta).")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help=(
        "Output table (format from its extension); a folder with --shard or --engine ray; the merged "
        ".parquet file with --merge."))] = ...,
    text_column: Annotated[Optional[str], typer.Option(help="Text column of INPUT (default: as in the run).")] = None,
    id_column: Annotated[Optional[str], typer.Option(help="Id column of INPUT (default: as in the run).")] = None,
    chunksize: Annotated[int, typer.Option(help="Rows per chunk (bounds memory on large inputs).")] = 5000,
    overwrite: Annotated[bool, typer.Option(help="Replace --out if it exists (never the input).")] = False,
    keep_formulas: Annotated[bool, typer.Option(
        help="Write cells starting with = + - @ as they are (by default a ' is put before them in CSV/XLSX "
             "so that a spreadsheet shows them as text instead of running them).")] = False,
    shard: Annotated[Optional[int], typer.Option(help="Code only shard i (0 … N-1) into --out/part-<i>-of-<N>.parquet; a finished shard is skipped.")] = None,
    num_shards: Annotated[Optional[int], typer.Option(help="Number of shards N (with --shard).")] = None,
    shard_by: Annotated[str, typer.Option(help="'rows' (row ranges) or a column whose values are hashed into shards (e.g. id).")] = "rows",
    merge: Annotated[Optional[Path], typer.Option(help="Merge the shards in this folder into --out (a .parquet file), in input order.")] = None,
    engine: Annotated[Literal["local", "ray"], typer.Option(help="'ray': code on a Ray cluster (pip install 'lexcoder\\[ray]'); --out is a folder.")] = "local",
    ray_address: Annotated[Optional[str], typer.Option(help="Ray cluster to join ('auto': this node's); default: a local Ray.")] = None,
    workers: Annotated[Optional[int], typer.Option(help="Ray actors, each loading the model once (default: the cluster's CPUs less one).")] = None,
    cpus_per_worker: Annotated[float, typer.Option(help="CPUs Ray reserves per actor.")] = 1.0,
    gpus_per_worker: Annotated[float, typer.Option(help="GPUs per Ray actor (fractions share a GPU).")] = 0.0,
) -> None:
    """Code new texts with a trained run; adds <label>_prob and <label>_pred columns.

    A big corpus: --shard i --num-shards N (one process per shard, e.g. a Slurm array job), then --merge;
    or --engine ray.
    """
    from ..distributed import merge_shards, predict_ray, predict_shard
    t0 = time.perf_counter()
    _check_predict_mode(run_dir, input, shard, num_shards, merge, engine)
    if merge is not None:
        result = merge_shards(merge, out, overwrite=overwrite)
        console.print(f"Merged {result.parts} shards ({result.rows:,} rows) into {out} in {time.perf_counter() - t0:.1f} s.")
    elif shard is not None:
        done = predict_shard(run_dir, input, out, shard=shard, num_shards=num_shards, shard_by=shard_by,
                             text_column=text_column, id_column=id_column, chunksize=chunksize)
        verb = "already coded from the same run and input: skipped" if done.skipped else "written"
        console.print(f"Shard {shard} of {num_shards}: {done.path} ({done.rows:,} rows) {verb} "
                      f"({time.perf_counter() - t0:.1f} s).")
    elif engine == "ray":
        predict_ray(run_dir, input, out, text_column=text_column, id_column=id_column, address=ray_address,
                    workers=workers, cpus_per_worker=cpus_per_worker, gpus_per_worker=gpus_per_worker,
                    batch_size=chunksize, overwrite=overwrite)
        console.print(f"Wrote {out}/ with Ray in {time.perf_counter() - t0:.1f} s.")
    else:
        predict_file(run_dir, input, out, text_column=text_column, id_column=id_column, chunksize=chunksize,
                     overwrite=overwrite, neutralise_formulas=not keep_formulas)
        console.print(f"Wrote {out} in {time.perf_counter() - t0:.1f} s.")


def _check_predict_mode(run_dir: Optional[Path], input: Optional[Path], shard: Optional[int],
                        num_shards: Optional[int], merge: Optional[Path], engine: str) -> None:
    """One clear error for options that do not go together."""
    from ..distributed import check_shard_spec
    from ..errors import ConfigError
    if merge is not None:
        if run_dir is not None or input is not None or shard is not None or num_shards is not None:
            raise ConfigError("--merge takes only the folder of shards and --out: lexcoder predict --merge coded/ "
                              "--out all.parquet (no RUN, INPUT, --shard or --num-shards).")
        return
    if run_dir is None or input is None:
        raise ConfigError("lexcoder predict needs a run folder and an input table: lexcoder predict RUN INPUT --out "
                          "coded.csv (or --merge FOLDER --out all.parquet).")
    if (shard is None) != (num_shards is None):
        raise ConfigError("--shard and --num-shards go together: --shard i --num-shards N codes shard i (0 … N-1).")
    if shard is not None:
        if engine == "ray":
            raise ConfigError("--engine ray spreads the work itself: leave out --shard/--num-shards.")
        check_shard_spec(shard, num_shards)


def _launched() -> bool:
    """Whether this is one of several processes started by ``accelerate launch`` (torchrun sets WORLD_SIZE);
    read here so that a TF-IDF run never imports torch."""
    return int(os.environ.get("WORLD_SIZE", "1") or 1) > 1


def _run_parallel(cfg, argv: list[str], *, out: Path, resume: bool, corrections: Optional[Path], repeat: int,
                  processes: int) -> None:
    """``lexcoder run`` data-parallel (:mod:`lexcoder.models.parallel`): start the processes, or, in one of
    them, run the pipeline (rank 0) or follow its fits (the others)."""
    from ..errors import ConfigError
    if cfg.model.kind == "tfidf":
        raise ConfigError("[model] kind = \"tfidf\" trains in one process (in seconds); several processes are for "
                          "fine-tuning encoders and LLMs. Run it without --processes and without accelerate launch.")
    if repeat != 1:
        raise ConfigError("--repeat runs one process at a time; use it without --processes / accelerate launch.")
    from ..models import parallel
    if not parallel.launched():
        from ..rundir import RunDir, prepare_out
        prepare_out(RunDir(out), resume=resume)  # a bad --out is refused before any process starts
        if logging.getLogger().isEnabledFor(logging.DEBUG):
            argv = ["--verbose", *argv]
        code = parallel.launch(argv, processes)
        if code:
            raise typer.Exit(code)
        return
    with parallel.session(cpu=cfg.model.params.get("device") == "cpu") as dp:
        if not dp.is_main:
            dp.serve()
            return
        try:
            friendly(_run_and_show)(cfg, out, resume, corrections)  # errors shown here, exit status recorded
        except typer.Exit as stop:
            parallel.record_exit(stop.exit_code)
            raise
        except BaseException:
            parallel.record_exit(1)
            raise
        finally:
            dp.release()


def _run_and_show(cfg, out: Path, resume: bool, corrections: Optional[Path] = None) -> RunResult:
    t0 = time.perf_counter()
    result = run_pipeline(cfg, out, resume=resume, corrections=corrections)
    facts = result.run.read_manifest().get("split")
    if facts:
        from ..split import SplitFacts
        console.print(SplitFacts(**facts).summary(), highlight=False)
    show_prevalence(result)
    show_metrics(result.metrics)
    show_variables(result.metrics)
    console.print(f"Run directory: [bold]{out}[/] ({time.perf_counter() - t0:.1f} s)")
    if result.run.report_html.is_file():
        console.print(f"Report (open in a browser): [bold]{result.run.report_html}[/]")
    return result


def show_prevalence(result: RunResult) -> None:
    table = Table(title="Label prevalence per split", title_justify="left")
    table.add_column("label", no_wrap=True)
    for col in result.prevalence.columns:
        table.add_column(str(col), justify="right")
    for label, row in result.prevalence.iterrows():
        fmt = (lambda v: f"{int(v):,}") if label == "rows" else (lambda v: f"{v:.1%}")
        table.add_row(str(label), *[fmt(v) for v in row])
    console.print(table)


def show_metrics(metrics: dict) -> None:
    if not metrics.get("labels"):
        return  # a run with categorical variables only: show_variables prints its figures
    where = "out-of-fold, all folds" if metrics["split"] == "cv" else "test split"
    # light rules, collapsed padding: eight columns still fit an 80-column terminal
    table = Table(title=f"Model vs. human coders ({where}; thresholds tuned on validation)",
                  title_justify="left", caption='always 1: F1 of the trivial rule "code every text 1"',
                  caption_justify="left", box=box.HORIZONTALS, collapse_padding=True, pad_edge=False)
    table.add_column("label", no_wrap=True)
    for col in ("n pos", "prec.", "recall", "F1", "always 1", "κ", "thresh."):
        table.add_column(col, justify="right")
    f = lambda v: "—" if v is None else f"{v:.3f}"  # noqa: E731
    for i, (label, m) in enumerate(metrics["labels"].items(), start=1):
        flag = " [bold yellow]![/]" if m.get("small_support") else ""
        table.add_row(escape(label) + flag, str(m["support"]), f(m["precision"]), f(m["recall"]), _f1_cell(m),
                      f(m.get("baseline", {}).get("f1")), f(m["cohen_kappa"]), f(m["threshold"]),
                      end_section=i == len(metrics["labels"]))
    for avg in ("macro", "micro"):
        m = metrics[avg]
        table.add_row(f"[bold]{avg}[/]", "", f(m["precision"]), f(m["recall"]), f"[bold]{_f1_cell(m)}[/]",
                      f(m.get("baseline_f1")), f(m.get("cohen_kappa")), "")
    console.print(table)
    for note in flag_notes(metrics):
        console.print(note, highlight=False)
    if metrics["macro"].get("f1_ci"):
        lo, hi = metrics["macro"]["f1_ci"]
        unit = "documents/groups" if metrics.get("bootstrap", {}).get("unit") == "group" else "texts"
        console.print(f"macro-F1 {metrics['macro']['f1']:.3f}, 95% bootstrap interval [{lo:.3f}, {hi:.3f}] "
                      f"(resampling {unit}); per-label intervals in the report.")


def _f1_cell(m: dict, key: str = "f1") -> str:
    """The model's F1 (``m[key]``), marked "≤" (beside the baseline column) when it does not beat the trivial
    baseline."""
    if m.get("beats_baseline", True):
        return f"{m[key]:.3f}"
    return f"[bold yellow]{m[key]:.3f} ≤[/]"


def flag_notes(metrics: dict) -> list[str]:
    """Footnotes of the metrics table: labels with few positives, labels that do not beat their baseline."""
    flagged = flagged_labels(metrics)
    where = "in the evaluated (out-of-fold) rows" if metrics["split"] == "cv" else "in the test split"
    notes = []
    if flagged["small"]:
        limit = metrics.get("small_support_threshold", SMALL_SUPPORT)
        notes.append(f"[bold yellow]![/] fewer than {limit} positive texts {where}: its figures can swing widely "
                     f"({len(flagged['small'])} of {len(metrics['labels'])} labels; the macro figures average "
                     "them in).")
    if flagged["below_baseline"]:
        notes.append(f"[bold yellow]≤[/] the model's F1 does not beat its baseline (coding every text 1) on "
                     f"{escape(', '.join(flagged['below_baseline']))}.")
    return notes


def show_variables(metrics: dict) -> None:
    """Per categorical variable: accuracy, macro-F1 with its bootstrap interval, κ and the majority-class
    baseline, then notes on small classes; prints nothing for a run without ``variables``."""
    variables = metrics.get("variables") or {}
    if not variables:
        return
    where = "out-of-fold, all folds" if metrics["split"] == "cv" else "test split"
    majority = "; ".join(f"{escape(name)}: {escape(str((v.get('baseline') or {}).get('class', '—')))}"
                         for name, v in variables.items())
    table = Table(title=f"Categorical variables: model vs. human coders ({where})",
                  title_justify="left", caption=f"majority: the trivial rule that gives every text the most "
                  f"frequent class ({majority})", caption_justify="left", box=box.HORIZONTALS,
                  collapse_padding=True, pad_edge=False)
    table.add_column("variable", no_wrap=True)
    for col in ("accuracy", "macro-F1", "95% CI", "κ", "majority\nF1", "majority\naccuracy"):
        table.add_column(col, justify="right", no_wrap=True)
    f = lambda v: "—" if v is None else f"{v:.3f}"  # noqa: E731
    for name, v in variables.items():
        ci, base = v.get("macro_f1_ci"), v.get("baseline") or {}
        flag = " [bold yellow]![/]" if v.get("small_support") else ""
        table.add_row(escape(name) + flag, f(v["accuracy"]), _f1_cell(v, "macro_f1"),
                      f"[{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "", f(v["cohen_kappa"]), f(base.get("macro_f1")),
                      f(base.get("accuracy")))
    console.print(table)
    for name, v in variables.items():
        if (line := _decision_line(name, v)):
            console.print(line, highlight=False)
    where = "in the evaluated (out-of-fold) rows" if metrics["split"] == "cv" else "in the test split"
    for name, v in variables.items():
        if v.get("small_support"):
            limit = v.get("small_support_threshold", SMALL_SUPPORT)
            console.print(f"[bold yellow]![/] {escape(name)}: fewer than {limit} texts {where} for "
                          f"{escape(', '.join(v['small_support']))}; their figures can swing widely.", highlight=False)
        if not v.get("beats_baseline", True):
            console.print(f"[bold yellow]≤[/] {escape(name)}: the model's macro-F1 does not beat giving every text "
                          "the majority class.", highlight=False)


def _decision_line(name: str, v: dict) -> str | None:
    """How the variable's decisions were made: its temperature (with the ECE it changed) and class biases."""
    parts = []
    if v.get("temperature") is not None:
        before = (v.get("before_temperature") or {}).get("ece")
        change = f" (ECE {before:.3f} → {v['ece']:.3f})" if before is not None and v.get("ece") is not None else ""
        parts.append(f"probabilities rescaled by temperature T = {v['temperature']:.2f}{change}")
    bias = {c: b for c, b in (v.get("class_bias") or {}).items() if b}
    if bias:
        parts.append("class bias " + ", ".join(f"{escape(str(c))} {b:+.2f}" for c, b in bias.items()))
    return f"{escape(name)}: " + "; ".join(parts) + " (tuned on validation)" if parts else None


def _repeat_and_show(cfg, out: Path, n: int, resume: bool, corrections: Optional[Path]) -> None:
    t0 = time.perf_counter()

    def progress(seeds, n: int, kept: bool) -> None:
        what = ("finished earlier, kept" if kept else
                f"split seed {seeds.split}, model seed {'—' if seeds.model is None else seeds.model}, "
                f"bootstrap seed {seeds.evaluate}")
        console.print(f"repeat {seeds.repeat} of {n} … {what}", highlight=False)

    result = run_repeats(cfg, out, n, resume=resume, corrections=corrections, on_repeat=progress)
    show_repeats(result.summary)
    console.print(f"Repeats folder: [bold]{out}[/] ({time.perf_counter() - t0:.1f} s): repeats.json, repeats.md; "
                  "each repeat's own run (figures, report) in repeat-<i>/")


def show_repeats(summary: dict) -> None:
    """Per label: F1 mean ± sd, min–max and the always-1 F1 across the repeats; then macro and micro."""
    n = summary["n_repeats"]
    where = "out-of-fold" if summary["split"] == "cv" else "test split"
    table = Table(title=f"Model vs. human coders over {n} repeats ({where})", title_justify="left",
                  box=box.HORIZONTALS, collapse_padding=True, pad_edge=False)
    table.add_column("label", no_wrap=True)
    for col in ("F1 mean ± sd", "min–max", "always 1"):
        table.add_column(col, justify="right")
    rows = summary_rows(summary)
    for i, row in enumerate(rows):
        name = escape(row.name) + (" [bold yellow]![/]" if row.small_support else "")
        cells = spread_cells(row)
        if row.average:
            name, cells = f"[bold]{name}[/]", (f"[bold]{cells[0]}[/]", *cells[1:])
        table.add_row(name, *cells, end_section=not row.average and (i + 1 == len(rows) or rows[i + 1].average))
    console.print(table)
    console.print(SPREAD_NOTE.format(n=n) + ".", highlight=False)
    if any(row.small_support for row in rows):
        console.print(f"[bold yellow]![/] fewer than {summary['small_support_threshold']} positive texts in the "
                      "evaluated split of at least one repeat: its figures can swing widely.", highlight=False)
