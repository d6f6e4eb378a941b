"""The Ray Data engine: ``lexcoder predict RUN INPUT --out FOLDER --engine ray`` (``pip install 'lexcoder[ray]'``).

Ray reads the input (``ray.data.read_parquet`` / ``read_csv``), a pool of actors each loads the run's model
once (:class:`CodeBatches`, a callable class for ``map_batches``) and codes its batches with
:meth:`lexcoder.predict.Coder.code`, the batch function of the single-process path, and Ray writes Parquet
files into a temporary folder that becomes ``FOLDER`` once all are written. ``FOLDER`` holds exactly the
single-process output's rows (ids and codes). Their order is the input's as far as Ray keeps it: lexcoder asks
for ``preserve_order``, yet one CI run in many saw a block out of place (Ray's streaming ``repartition`` is
experimental), so rows are to be matched by id; shards + ``--merge`` guarantee input order.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import DataError, LexcoderError
from ..io import atomic_dir, delimited_options, iter_table, table_format
from ..predict import Coder, check_chunksize, output_schema
from ..rundir import RunDir, package_versions
from .outdir import check_out_folder
from .shards import _check_input_file, run_id

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'lexcoder[ray]'"
# written into every output folder: the record that lexcoder wrote it (so --overwrite may replace it)
MARKER = ".lexcoder-ray.json"


class CodeBatches:
    """A Ray Data callable class: loads the run's model once per actor, then codes pandas batches.

    Each coded batch is returned as Arrow under ``schema`` (:func:`lexcoder.predict.output_schema`), so the
    files hold the types the single-process Parquet output holds.
    """

    def __init__(self, run_dir: str, text_column: str | None, id_column: str | None, schema) -> None:
        self.coder = Coder(run_dir, text_column=text_column, id_column=id_column)
        self.schema = schema

    def __call__(self, batch: pd.DataFrame):
        import pyarrow as pa
        coded = self.coder.code(batch)
        return pa.Table.from_pandas(coded, preserve_index=False).select(self.schema.names).cast(self.schema)


def import_ray():
    """The ``ray`` module with Ray Data, or one clear error saying how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401 - ray without the [data] extra lacks it
    except ImportError:
        raise LexcoderError(f"--engine ray needs Ray Data, which is not installed. Install it with `{INSTALL_HINT}` "
                            "(or run without --engine ray: one process, or --shard i --num-shards N).") from None
    return ray


def predict_ray(run_dir: str | Path, input_path: str | Path, out_dir: str | Path, *,
                text_column: str | None = None, id_column: str | None = None, address: str | None = None,
                workers: int | None = None, cpus_per_worker: float = 1.0, gpus_per_worker: float = 0.0,
                batch_size: int = 5_000, overwrite: bool = False) -> Path:
    """Code ``input_path`` (Parquet or CSV/TSV) with the run's model on Ray; write Parquet files into ``out_dir``.

    Parameters
    ----------
    run_dir : a finished run directory (readable from every Ray node: a shared file system)
    input_path : Parquet (a file or a folder of files) or CSV/TSV (every column read as text, as lexcoder does)
    out_dir : the output folder: new or empty, or an earlier output of this engine (it holds the record
        ``.lexcoder-ray.json``), replaced only with ``overwrite``; never inside a run folder or an input, never
        a folder of files lexcoder did not write (:func:`lexcoder.distributed.outdir.check_out_folder`)
    address : the Ray cluster (``"auto"``: the one this node belongs to); None starts a local Ray unless
        Ray is already initialised in this process
    workers : actors (each loads the model once); None: as many as the cluster's CPUs allow with one CPU
        left for Ray's read and write tasks (actors holding every CPU would leave none to read the input)
    cpus_per_worker, gpus_per_worker : CPUs and GPUs Ray reserves per actor (fractions share one)
    batch_size : rows per batch given to an actor

    Raises
    ------
    LexcoderError
        Ray is not installed (the message says ``pip install 'lexcoder[ray]'``); bad settings; the run
        reads neighbouring sentences (Ray's batches could cut a document); the input lacks the text column;
        an ``out_dir`` refused as above. Nothing is written then.
    """
    check_chunksize(batch_size)
    if workers is not None and workers < 1:
        raise DataError(f"--workers must be at least 1 (got {workers}).")
    if gpus_per_worker < 0 or cpus_per_worker <= 0:
        raise DataError(f"--gpus-per-worker must be 0 or more and --cpus-per-worker more than 0 (got "
                        f"{gpus_per_worker} and {cpus_per_worker}).")
    ray = import_ray()
    run_dir, input_path, out_dir = Path(run_dir).resolve(), Path(input_path), Path(out_dir)
    coder = _checked(run_dir, input_path, out_dir, overwrite, text_column, id_column)
    started = not ray.is_initialized()
    if started:
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    try:
        ray.data.DataContext.get_current().execution_options.preserve_order = True
        workers = _check_workers(ray.cluster_resources().get("CPU", 1), workers, cpus_per_worker)
        # blocks of batch_size rows: a single input file is one block, which only one actor could code
        ds = _read(ray, input_path).repartition(target_num_rows_per_block=batch_size).map_batches(
            CodeBatches, fn_constructor_kwargs={"run_dir": str(run_dir), "text_column": coder.text_column,
                                                "id_column": coder.id_column,
                                                "schema": output_schema(coder, _first_file(input_path))},
            batch_format="pandas", batch_size=batch_size, num_cpus=cpus_per_worker,
            num_gpus=gpus_per_worker or None, compute=ray.data.ActorPoolStrategy(size=workers))
        with atomic_dir(out_dir) as tmp:
            ds.write_parquet(str(tmp.resolve()))
            _write_marker(tmp, run_dir, input_path)
    finally:
        if started:
            ray.shutdown()
    log.info("Coded %s into %s with Ray", input_path, out_dir)
    return out_dir


def _checked(run_dir: Path, input_path: Path, out_dir: Path, overwrite: bool, text_column: str | None,
             id_column: str | None) -> Coder:
    """Everything that can be checked before Ray starts; the run's :class:`Coder` (its columns)."""
    first = _first_file(input_path)
    if not input_path.is_dir():
        _check_input_file(input_path)
        if table_format(input_path) not in ("parquet", "csv", "tsv"):
            raise DataError(f"{input_path}: the Ray engine reads Parquet or CSV/TSV; convert the table (or run "
                            "without --engine ray).")
    cfg = RunDir(run_dir).load_config()
    if cfg.context.order_column:
        raise DataError("The run reads each text with its neighbours ([context] order_column), and Ray's batches "
                        "could cut a document. Use the single-process engine with --shard-by "
                        "<document column> to spread the work.")
    _check_out(out_dir, run_dir, input_path, overwrite)
    coder = Coder(run_dir, text_column=text_column, id_column=id_column)
    coder.check(next(iter_table(first, chunksize=1)), first)
    return coder


def _check_workers(cpus: float, workers: int | None, cpus_per_worker: float) -> int:
    """The actors to start: ``workers`` (default: as many as fit) while one CPU stays free for Ray's read
    and write tasks; actors holding every CPU would wait forever for the input."""
    fit = int((cpus - 1) // cpus_per_worker)
    if workers is None:
        return max(1, fit)
    if workers > fit and workers * cpus_per_worker > cpus - 1:
        raise DataError(f"--workers {workers} × --cpus-per-worker {cpus_per_worker:g} would reserve "
                        f"{workers * cpus_per_worker:g} of the Ray cluster's {cpus:g} CPUs, leaving less than one "
                        "for reading and writing (Ray would wait forever). Lower --workers, or give each fewer "
                        f"CPUs (e.g. --cpus-per-worker {max(cpus - 1, 0.5) / workers:g}).")
    return workers


def _first_file(input_path: Path) -> Path:
    """The input, or the first Parquet file of an input folder."""
    if not input_path.is_dir():
        return input_path
    files = sorted(input_path.glob("*.parquet"))
    if not files:
        raise DataError(f"{input_path}: a folder without .parquet files. Give a Parquet/CSV file or a folder of "
                        "Parquet files.")
    return files[0]


def _check_out(out_dir: Path, run_dir: Path, input_path: Path, overwrite: bool) -> None:
    """``out_dir`` passes the shared ``--out`` check; an earlier Ray output in it is replaced only with
    ``overwrite``."""
    earlier = check_out_folder(out_dir, inputs=[run_dir, input_path], what="a folder of Parquet files",
                               foreign=_not_written_by_ray_engine)
    if earlier and not overwrite:
        raise DataError(f"--out {out_dir} is not empty: it holds an earlier output of lexcoder predict --engine ray. "
                        "Allow replacing it with --overwrite, or choose a new folder.")


def _not_written_by_ray_engine(names: list[str]) -> list[str]:
    """The names the Ray engine did not write: all of them without its record file, else all but Parquet files."""
    if names and MARKER not in names:
        return names
    return [n for n in names if n != MARKER and not n.endswith(".parquet")]


def _write_marker(folder: Path, run_dir: Path, input_path: Path) -> None:
    """The record that lexcoder wrote ``folder`` (and from what); dataset readers skip names starting with a dot."""
    record = {"format": 1, "run": str(run_dir), "run_id": run_id(run_dir), "input": str(input_path.resolve()),
              "lexcoder_version": package_versions().get("lexcoder")}
    (folder / MARKER).write_text(json.dumps(record, indent=1), encoding="utf-8")


def _read(ray: Any, path: Path):
    """The input as a Ray Dataset; CSV/TSV cells as text (empty = missing), as :func:`lexcoder.io.read_table`."""
    if path.is_dir() or table_format(path) == "parquet":
        return ray.data.read_parquet(str(path.resolve()))
    import pyarrow.csv as pacsv
    options = delimited_options(path, table_format(path))
    columns = list(next(iter_table(path, chunksize=1)).columns)
    return ray.data.read_csv(
        str(path.resolve()), read_options=pacsv.ReadOptions(encoding=options["encoding"]),
        parse_options=pacsv.ParseOptions(delimiter=options["sep"], newlines_in_values=True),
        convert_options=pacsv.ConvertOptions(column_types={c: "string" for c in columns}, null_values=[""],
                                             strings_can_be_null=True, quoted_strings_can_be_null=True))
