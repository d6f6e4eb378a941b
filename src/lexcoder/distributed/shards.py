"""Sharded prediction: one shard of a big corpus per process (e.g. a Slurm array job), each written atomically.

Shard ``i`` of ``N`` is either a row range of the input (``shard_by="rows"``: rows ``i*n//N`` up to
``(i+1)*n//N``, the default) or the rows whose value in a column hashes to ``i`` (``shard_by=<column>``:
BLAKE2b of the value as text, modulo ``N``, the same on every machine and Python version, unlike
:func:`hash`). Shard ``i`` is written as ``<out>/part-<i>-of-<N>.parquet`` (numbers padded to 5 digits so
that they sort), through a temporary file and a rename; its footer records what it is a function of
(:func:`shard_identity`): the run, the input (sha256, size, rows), the shard spec, the text column and the
lexcoder version. Hence:

- a shard already written from the same run, input and spec is skipped (a re-submitted array job redoes
  only what is missing); one written from another run, input or spec is refused, never overwritten or mixed;
- :func:`lexcoder.distributed.merge.merge_shards` checks that every shard is there and consistent before it
  writes one file in input order; plain Parquet dataset readers (``pandas.read_parquet(out)``, Spark, DuckDB,
  Ray) read ``<out>`` as one table as it is (a temporary file starts with a dot: dataset readers skip it).

Parquet inputs are read by row groups: a row-range shard reads only the row groups it needs. Other
formats are streamed (bounded memory), once to count the rows and once to code the shard's rows.
"""
from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..context import document_column
from ..errors import DataError
from ..io import atomic_path, file_sha256, iter_table, table_format
from ..predict import Coder, check_chunksize, checked_chunks, code_chunks, output_schema, parquet_writer
from ..rundir import RunDir, RunInputs, package_versions
from .outdir import check_out_folder

log = logging.getLogger(__name__)

METADATA_KEY = b"lexcoder.shard"  # the footer key holding a shard's identity (JSON)
PART_PATTERN = re.compile(r"part-(\d+)-of-(\d+)\.parquet")
# what must agree for a shard to be reused, and between the shards that are merged
IDENTITY_KEYS = ("run_id", "input_sha256", "num_shards", "shard_by", "text_column")


@dataclass(frozen=True)
class ShardResult:
    """What :func:`predict_shard` did: the part file, its rows, and whether it was already there."""

    path: Path
    rows: int
    skipped: bool


def part_name(index: int, count: int) -> str:
    """``part-00003-of-00008.parquet``: the file of shard ``index`` of ``count``."""
    return f"part-{index:05d}-of-{count:05d}.parquet"


def check_shard_spec(index: int, count: int) -> None:
    """Refuse a shard number outside ``0 … count-1`` or a count below 1 (one message saying which)."""
    if count < 1:
        raise DataError(f"--num-shards must be at least 1 (got {count}).")
    if not 0 <= index < count:
        raise DataError(f"--shard must be between 0 and {count - 1} for --num-shards {count} (got {index}); "
                        "shards are numbered from 0, as in a Slurm array `--array=0-" f"{count - 1}`.")


def shard_of(values: pd.Series, count: int) -> np.ndarray:
    """The shard (0 … count-1) of each value: BLAKE2b of the value as text (missing: ``""``), modulo ``count``.

    Stable across processes, machines and Python versions (Python's :func:`hash` of a string is not).
    """
    def key(value: Any) -> bytes:
        text = "" if value is None or (not isinstance(value, str) and pd.isna(value)) else str(value)
        return hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()
    return np.fromiter((int.from_bytes(key(v), "big") % count for v in values), dtype=np.int64, count=len(values))


def run_id(run_dir: Path) -> str:
    """A short fingerprint of a run: what it is a function of (config, data, ledger, lexcoder version) and
    when it was created, so a run retrained into the same folder is another run."""
    manifest = RunDir(run_dir).read_manifest()
    facts = {"inputs": RunInputs.recorded(manifest).__dict__, "created": manifest.get("created")}
    return hashlib.sha256(json.dumps(facts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def shard_identity(run_dir: Path, input_path: Path, *, index: int, count: int, shard_by: str,
                   text_column: str) -> dict[str, Any]:
    """What a shard is a function of (stored in its footer); ``input_rows`` is added once it is known."""
    return {"format": 1, "run": str(run_dir.resolve()), "run_id": run_id(run_dir),
            "input": str(input_path.resolve()), "input_sha256": file_sha256(input_path),
            "input_bytes": input_path.stat().st_size, "shard": index, "num_shards": count, "shard_by": shard_by,
            "text_column": text_column, "lexcoder_version": package_versions().get("lexcoder")}


def read_identity(path: Path) -> dict[str, Any] | None:
    """The identity in a part file's footer; None when the file has none (not written by lexcoder)."""
    import pyarrow.parquet as pq
    try:
        meta = pq.ParquetFile(path).metadata.metadata or {}
    except (OSError, ValueError) as err:  # pyarrow's errors derive from these
        raise DataError(f"{path}: cannot be read as Parquet ({type(err).__name__}: {err}). It was not written "
                        "completely by lexcoder: delete it and run its shard again.") from None
    return json.loads(meta[METADATA_KEY]) if METADATA_KEY in meta else None


def differences(mine: dict[str, Any], theirs: dict[str, Any]) -> list[str]:
    """``key: theirs → mine`` for the identity keys that differ (what the message names)."""
    def show(value: Any) -> str:  # hashes shortened to what a reader compares
        return f"{value[:12]}…" if isinstance(value, str) and len(value) > 16 else repr(value)
    return [f"{k}: {show(theirs.get(k))} → {show(mine.get(k))}" for k in IDENTITY_KEYS if mine.get(k) != theirs.get(k)]


def predict_shard(run_dir: str | Path, input_path: str | Path, out_dir: str | Path, *, shard: int,
                  num_shards: int, shard_by: str = "rows", text_column: str | None = None,
                  id_column: str | None = None, chunksize: int = 5_000) -> ShardResult:
    """Code shard ``shard`` of ``num_shards`` of ``input_path``; write ``out_dir/part-<shard>-of-<N>.parquet``.

    Parameters
    ----------
    run_dir : a finished run directory
    input_path : the corpus (any format lexcoder reads; Parquet is read by row groups)
    out_dir : the folder of the parts (created; it may hold only parts of this run, input and spec)
    shard, num_shards : which shard (0 … num_shards-1) of how many
    shard_by : ``"rows"`` (row ranges) or a column whose values are hashed (e.g. the id column; with a run
        that reads neighbouring sentences, the document column, so that documents stay whole)
    text_column, id_column, chunksize : as in :func:`lexcoder.predict_file`

    Returns
    -------
    ShardResult
        ``skipped=True`` when the part was already written from the same run, input and spec.

    Raises
    ------
    DataError
        A shard number out of range; an input that cannot be read or lacks a column; an ``out_dir`` that
        holds other files, or parts of another run, input or spec (named, with what differs). Nothing is
        written then.
    """
    check_shard_spec(shard, num_shards)
    check_chunksize(chunksize)
    run_dir, input_path, out_dir = Path(run_dir), Path(input_path), Path(out_dir)
    cfg = RunDir(run_dir).load_config()
    _check_input_file(input_path)
    _check_out_dir(out_dir, run_dir, input_path)
    _check_shard_by(cfg, shard_by)
    text_column = text_column or cfg.data.text_column
    identity = shard_identity(run_dir, input_path, index=shard, count=num_shards, shard_by=shard_by,
                              text_column=text_column)
    target = out_dir / part_name(shard, num_shards)
    done = _check_siblings(out_dir, identity, target)
    if done is not None:
        log.info("%s is already coded from the same run and input: skipped.", target)
        return ShardResult(target, done, skipped=True)
    coder = Coder(run_dir, text_column=text_column, id_column=id_column)
    rows, total = _shard_rows(input_path, shard, num_shards, shard_by, chunksize)
    with atomic_path(target) as tmp, parquet_writer(tmp, input_path, coder.added,
                                                     schema=output_schema(coder, input_path)) as write:
        n_done = code_chunks(coder, checked_chunks(coder, rows, input_path), write, source=input_path)
        write.footer[METADATA_KEY] = json.dumps({**identity, "input_rows": total(), "rows": n_done})
    log.info("Coded %d rows (shard %d of %d) into %s", n_done, shard, num_shards, target)
    return ShardResult(target, n_done, skipped=False)


def _check_input_file(path: Path) -> None:
    if not path.is_file():
        raise DataError(f"{path}: input not found{' (it is a folder)' if path.is_dir() else ''}. Give the "
                        "table of texts to code.")
    table_format(path)


def _check_out_dir(out_dir: Path, run_dir: Path, input_path: Path) -> None:
    """``out_dir`` passes the shared ``--out`` check and holds nothing but parts (and their temporary files)."""
    check_out_folder(out_dir, inputs=[run_dir, input_path], what="a folder of shards", foreign=lambda names: [
        n for n in names if not PART_PATTERN.fullmatch(n) and not n.startswith(".part-")])


def _check_shard_by(cfg, shard_by: str) -> None:
    """A run that reads neighbouring sentences needs whole documents in a shard: hash the document column."""
    doc = document_column(cfg.data, cfg.context)
    if cfg.context.order_column and shard_by != doc:
        raise DataError(f"The run reads each text with its neighbours ([context] order_column = "
                        f"{cfg.context.order_column!r}), so a shard must hold whole documents; --shard-by "
                        f"{shard_by} could cut one. Use --shard-by {doc} (the document column).")


def _check_siblings(out_dir: Path, identity: dict[str, Any], target: Path) -> int | None:
    """Refuse parts of another run, input or spec in ``out_dir``; the rows of ``target`` when it is done."""
    if not out_dir.is_dir():
        return None
    for part in sorted(out_dir.iterdir()):
        if not PART_PATTERN.fullmatch(part.name):
            continue
        theirs = read_identity(part)
        if theirs is None:
            raise DataError(f"{part} was not written by lexcoder predict --shard (no shard record in its footer). "
                            "Move it away or use another --out folder.")
        changed = differences(identity, theirs)
        if changed:
            raise DataError(f"{part} was coded from another run, input or sharding ({'; '.join(changed)}). "
                            "Shards of different runs or inputs must not be mixed: use another --out folder, "
                            "or delete the old parts to recode everything.")
    return read_identity(target)["rows"] if target.is_file() else None


def _shard_rows(path: Path, index: int, count: int, shard_by: str, chunksize: int
                ) -> tuple[Iterator[pd.DataFrame], Any]:
    """The shard's rows in input order (chunks; at least one, maybe empty) and a function giving the input's
    row count (known once the chunks are consumed)."""
    if shard_by == "rows":
        total = _count_rows(path, chunksize)
        start, stop = index * total // count, (index + 1) * total // count
        chunks = (_parquet_range(path, start, stop, chunksize) if table_format(path) == "parquet"
                  else _streamed_range(path, start, stop, chunksize))
        return chunks, lambda: total
    seen = [0]

    def hashed() -> Iterator[pd.DataFrame]:
        for chunk in iter_table(path, chunksize=chunksize):
            if shard_by not in chunk.columns:
                raise DataError(f"{path}: no column {shard_by!r} to shard by (columns: "
                                f"{', '.join(map(str, chunk.columns[:20]))}). Give --shard-by rows or a column "
                                "of the input, e.g. its id column.")
            seen[0] += len(chunk)
            yield chunk[shard_of(chunk[shard_by], count) == index]
    return hashed(), lambda: seen[0]


def _count_rows(path: Path, chunksize: int) -> int:
    """The input's rows: from a Parquet footer, otherwise by streaming the table once."""
    if table_format(path) == "parquet":
        import pyarrow.parquet as pq
        next(iter_table(path, chunksize=1))  # the reader's checks first (a readable Parquet file)
        return pq.ParquetFile(path).metadata.num_rows
    return sum(len(chunk) for chunk in iter_table(path, chunksize=chunksize))


def _parquet_range(path: Path, start: int, stop: int, chunksize: int) -> Iterator[pd.DataFrame]:
    """Rows ``start`` up to ``stop`` of a Parquet file, reading only the row groups that hold them."""
    import pyarrow.parquet as pq
    source = pq.ParquetFile(path)
    groups, first, offset = [], None, 0
    for g in range(source.metadata.num_row_groups):
        n = source.metadata.row_group(g).num_rows
        if offset < stop and offset + n > start:
            groups.append(g)
            first = offset if first is None else first
        offset += n
    yield source.schema_arrow.empty_table().to_pandas()  # the columns, even for an empty shard
    if not groups:
        return
    position = first
    for batch in source.iter_batches(batch_size=chunksize, row_groups=groups):
        lo, hi = max(start - position, 0), min(stop - position, batch.num_rows)
        if lo < hi:
            yield batch.slice(lo, hi - lo).to_pandas()
        position += batch.num_rows
        if position >= stop:
            return


def _streamed_range(path: Path, start: int, stop: int, chunksize: int) -> Iterator[pd.DataFrame]:
    """Rows ``start`` up to ``stop`` of a streamed table (CSV, JSONL, …), in chunks."""
    position = 0
    for chunk in iter_table(path, chunksize=chunksize):
        lo, hi = max(start - position, 0), min(stop - position, len(chunk))
        if lo < hi or position == 0:  # the first chunk always: its columns are checked
            yield chunk.iloc[lo:max(lo, hi)]
        position += len(chunk)
        if position >= stop:
            return
