"""The one check of an ``--out`` folder for corpus-scale prediction (sharded and Ray), before anything is written.

Both engines write a folder that a Parquet dataset reader reads as one table, and the Ray engine may replace
it whole (``--overwrite``). So a folder is refused, each time with one message naming it and the fix, when it

- is, holds or lies inside one of the command's inputs (the run folder, the table or folder of texts): a
  replaced folder would delete an input, and an output inside an input folder would be read as input next time;
- lies inside a run folder (any run, not only this one), which holds only what its run wrote;
- is a file, or lies below a file;
- holds entries lexcoder did not write (the engine says which entries are its own): a dataset reader would
  read them too, and a replaced folder would delete them.

What an engine does with a folder of its own earlier output (a shard skips its finished part; Ray needs
``--overwrite``) is left to the engine: :func:`check_out_folder` returns those entries.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from ..errors import DataError
from ..rundir import RunDir

# An engine's rule for a folder's entries: the names lexcoder did not write (given all names in the folder).
Foreign = Callable[[list[str]], list[str]]


def check_out_folder(out_dir: str | Path, *, inputs: Sequence[str | Path], foreign: Foreign, what: str) -> list[str]:
    """Refuse an ``--out`` folder that prediction must not write into; the entries it already holds.

    Parameters
    ----------
    out_dir : the ``--out`` folder (new, empty, or holding only the engine's own earlier output)
    inputs : the command's inputs (run folder, input table or folder): ``out_dir`` must not be, hold or lie
        inside any of them
    foreign : given the names in ``out_dir``, those lexcoder did not write (the engine's rule)
    what : what the engine writes, for the messages (e.g. ``"a folder of shards"``)

    Returns
    -------
    list of str
        The names in ``out_dir`` (sorted; empty for a new or empty folder), all written by lexcoder.

    Raises
    ------
    DataError
        Naming ``--out`` and what is wrong with it, and how to fix it; nothing has been written then.
    """
    out_dir = Path(out_dir)
    where = out_dir.resolve()
    outer = next((p for p in [where, *where.parents] if RunDir(p).is_run()), None)
    if outer is not None:
        relation = "is" if outer == where else "lies inside"
        raise DataError(f"--out {out_dir} {relation} the run folder {outer}, which holds only what the run wrote. "
                        f"Write {what} elsewhere, e.g. next to the run folder.")
    for source in map(Path, inputs):
        _check_apart(out_dir, where, source)
    _check_not_a_file(out_dir, where, what)
    names = sorted(e.name for e in out_dir.iterdir()) if out_dir.is_dir() else []
    strangers = foreign(names)
    if strangers:
        shown = ", ".join(strangers[:5]) + (" …" if len(strangers) > 5 else "")
        raise DataError(f"--out {out_dir} is not empty: it holds files lexcoder did not write ({shown}). A Parquet "
                        "dataset reader would read them as part of the output, and lexcoder never deletes files it "
                        "did not write. Use a new or empty folder.")
    return names


def _check_apart(out_dir: Path, where: Path, source: Path) -> None:
    """``out_dir`` is not ``source``, does not hold it and does not lie inside it."""
    if not source.exists():
        return
    src = source.resolve()
    if where == src:
        raise DataError(f"--out {out_dir} is an input of this command ({source}); lexcoder never writes into or "
                        "replaces its inputs. Give a new folder for the output.")
    if where in src.parents:
        raise DataError(f"--out {out_dir} holds an input of this command ({source}); lexcoder never writes next to "
                        "or replaces its inputs. Give a new folder for the output, outside the inputs.")
    if src.is_dir() and src in where.parents:
        raise DataError(f"--out {out_dir} lies inside an input folder of this command ({source}): the output would be "
                        "read as input the next time. Give a folder outside the inputs.")


def _check_not_a_file(out_dir: Path, where: Path, what: str) -> None:
    """``out_dir`` is a folder or new, and no folder above it is a file."""
    if out_dir.exists() and not out_dir.is_dir():
        raise DataError(f"--out {out_dir} is a file; this writes {what}. Give a folder name such as coded/.")
    blocker = next((p for p in where.parents if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise DataError(f"--out {out_dir} lies below {blocker}, which is a file, not a folder. Give a folder name "
                        "such as coded/.")
