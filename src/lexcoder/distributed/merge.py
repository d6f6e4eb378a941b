"""Merging the parts of a sharded prediction into one Parquet file, in the input's row order.

Before anything is written, every part is checked (:func:`check_parts`): all ``N`` shards are there, none
is extra, all were coded from the same run, input and sharding (their footers,
:func:`lexcoder.distributed.shards.shard_identity`), their columns agree and their rows add up to the
input's. Row-range shards are concatenated; hash shards are interleaved back into input order by reading
the sharding column of the input again (which must be unchanged). The file appears only once complete.
"""
from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError, format_rows
from ..io import atomic_path, file_sha256, iter_table, table_format
from ..rundir import check_output_file
from .shards import PART_PATTERN, differences, part_name, read_identity, shard_of

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MergeResult:
    """The merged file, its rows and the number of parts it was made of."""

    path: Path
    rows: int
    parts: int


def merge_shards(folder: str | Path, output: str | Path, *, overwrite: bool = False,
                 chunksize: int = 50_000) -> MergeResult:
    """Merge the parts in ``folder`` (written by :func:`~lexcoder.distributed.shards.predict_shard`) into
    the Parquet file ``output``, in the input's row order.

    Raises
    ------
    DataError
        When a shard is missing, extra, unreadable, or coded from another run, input or sharding; when the
        parts' columns or row counts do not agree; when hash shards are merged and the input is gone or
        changed; when ``output`` is not a new ``.parquet`` file (an existing one needs ``overwrite``).
        Nothing is written then.
    """
    folder, output = Path(folder), Path(output)
    parts, identity = check_parts(folder)
    check_output_file(output, inputs=parts, overwrite=overwrite)
    if output.resolve().parent == folder.resolve():
        raise DataError(f"--out {output} is inside the folder of shards {folder}, which a Parquet dataset reader "
                        "reads as one table: the merged file would be read twice. Write it elsewhere.")
    if table_format(output) != "parquet":
        raise DataError(f"--out {output}: merged shards are written as Parquet; give a name ending in .parquet.")
    import pyarrow.parquet as pq
    schema = pq.ParquetFile(parts[0]).schema_arrow
    batches = _concatenated(parts, chunksize) if identity["shard_by"] == "rows" else \
        _interleaved(parts, identity, chunksize)
    rows = 0
    with atomic_path(output) as tmp:
        with pq.ParquetWriter(tmp, schema.remove_metadata()) as writer:
            for table in batches:
                writer.write_table(table)
                rows += table.num_rows
    log.info("Merged %d shards (%d rows) into %s", len(parts), rows, output)
    return MergeResult(output, rows, len(parts))


def check_parts(folder: Path) -> tuple[list[Path], dict[str, Any]]:
    """The parts of ``folder`` in shard order and their common identity, after every check."""
    if not folder.is_dir():
        raise DataError(f"--merge {folder}: {'is a file' if folder.exists() else 'folder not found'}. Give the "
                        "--out folder of the sharded `lexcoder predict` runs.")
    named = sorted(e for e in folder.iterdir() if e.name.endswith(".parquet") and not e.name.startswith("."))
    strays = [e.name for e in named if not PART_PATTERN.fullmatch(e.name)]
    if strays:
        raise DataError(f"--merge {folder}: {', '.join(strays[:5])} {'is not a shard' if len(strays) == 1 else 'are not shards'} "
                        "of lexcoder predict. Move extra files out of the folder, then merge again.")
    if not named:
        raise DataError(f"--merge {folder}: no shards (part-*-of-*.parquet) in it. Code them first with "
                        "`lexcoder predict RUN INPUT --out FOLDER --shard i --num-shards N`.")
    identities = {}
    for part in named:
        identities[part] = read_identity(part)
        if identities[part] is None:
            raise DataError(f"{part} holds no lexcoder shard record: it was not written by lexcoder predict --shard. "
                            "Move it out of the folder, then merge again.")
    first, identity = named[0], identities[named[0]]
    for part in named[1:]:
        changed = differences(identities[part], identity)
        if changed:
            raise DataError(f"{part} and {first} were coded from different runs, inputs or shardings "
                            f"({'; '.join(changed)}); shards of different runs must not be merged. Recode the "
                            "odd shards into a folder of their own.")
    return _complete(folder, named, identities, identity), identity


def _complete(folder: Path, named: list[Path], identities: dict, identity: dict[str, Any]) -> list[Path]:
    """Every shard 0 … N-1 once, under its own name, with matching columns and rows adding up."""
    import pyarrow.parquet as pq
    count = identity["num_shards"]
    wrong = [p.name for p in named if p.name != part_name(identities[p]["shard"], count)]
    if wrong:
        raise DataError(f"--merge {folder}: {', '.join(wrong[:5])} do not hold the shard their name says "
                        "(renamed files?). Recode those shards.")
    present = {identities[p]["shard"] for p in named}
    missing = sorted(set(range(count)) - present)
    if missing:
        raise DataError(f"--merge {folder}: shard(s) {format_rows(missing)} of {count} are missing (the others "
                        f"are there). Code them with `lexcoder predict {identity['run']} {identity['input']} --out "
                        f"{folder} --shard i --num-shards {count}`; finished shards are skipped.")
    parts = [folder / part_name(i, count) for i in range(count)]
    schema = pq.ParquetFile(parts[0]).schema_arrow.remove_metadata()
    odd = [p.name for p in parts if not pq.ParquetFile(p).schema_arrow.remove_metadata().equals(schema)]
    if odd:
        raise DataError(f"--merge {folder}: the columns of {', '.join(odd[:5])} differ from those of {parts[0].name}. "
                        "Recode those shards.")
    rows = sum(pq.ParquetFile(p).metadata.num_rows for p in parts)
    expected = identity.get("input_rows")
    if rows != expected:
        raise DataError(f"--merge {folder}: the shards hold {rows} rows but the input had {expected}. A part file "
                        "is damaged: delete the parts and code the shards again.")
    return parts


def _concatenated(parts: list[Path], chunksize: int) -> Iterator:
    """Row-range shards in shard order: the input's order."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    for part in parts:
        source = pq.ParquetFile(part)
        for batch in source.iter_batches(batch_size=chunksize):
            yield pa.Table.from_batches([batch], schema=source.schema_arrow).replace_schema_metadata(None)


def _interleaved(parts: list[Path], identity: dict[str, Any], chunksize: int) -> Iterator:
    """Hash shards back in input order: each input row is taken from its shard, read in order."""
    column, count = identity["shard_by"], identity["num_shards"]
    source = Path(identity["input"])
    if not source.is_file() or file_sha256(source) != identity["input_sha256"]:
        state = "is gone" if not source.is_file() else "has changed since the shards were coded"
        raise DataError(f"The input {source} {state}: shards cut by a hash of {column!r} are put back in input "
                        "order by reading that column again. Restore the input (or read the folder as a "
                        "Parquet dataset, in shard order).")
    import pyarrow as pa
    readers = [_Rows(part) for part in parts]
    for chunk in iter_table(source, chunksize=chunksize):
        shard = shard_of(chunk[column], count)
        grouped = pa.concat_tables([readers[k].take(int(n)) for k, n in enumerate(np.bincount(shard, minlength=count))])
        order = np.argsort(shard, kind="stable")  # input position of each grouped row
        inverse = np.empty_like(order)
        inverse[order] = np.arange(len(order))
        yield grouped.take(inverse)


class _Rows:
    """The rows of one Parquet file, handed out in order ``n`` at a time."""

    def __init__(self, path: Path) -> None:
        import pyarrow.parquet as pq
        self.source = pq.ParquetFile(path)
        self.batches = self.source.iter_batches(batch_size=50_000)
        self.pending: list = []
        self.held = 0

    def take(self, n: int):
        """The next ``n`` rows (a ``pyarrow.Table``)."""
        import pyarrow as pa
        while self.held < n:
            batch = next(self.batches)
            self.pending.append(batch)
            self.held += batch.num_rows
        table = pa.Table.from_batches(self.pending, schema=self.source.schema_arrow)
        rest = table.slice(n)
        self.pending, self.held = rest.to_batches(), rest.num_rows
        return table.slice(0, n).replace_schema_metadata(None)
