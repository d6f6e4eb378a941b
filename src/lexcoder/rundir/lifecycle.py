"""Where a command may write, and a run's life from its start to its end.

- ``--out`` must be new, empty, or hold a lexcoder run, and not lie inside another run
  (:func:`prepare_out`): files lexcoder did not write are never modified or removed;
- a command writing into a run folder holds its lock (:func:`writes_to_run`); an output table is never
  one of the command's inputs, never inside a run folder, and replaces a file only with ``--overwrite``
  (:func:`check_output_file`);
- a run records its identity and ``status`` in the manifest when it starts (:func:`start_run`), how it
  ended (:func:`set_status`), and each stage once it finished (:func:`stage`), so a resume redoes exactly
  what is missing and a run that failed before producing a model is replaced by a plain rerun;
- :func:`clear_run`, :func:`discard_run` and :func:`remove_debris` remove only lexcoder's own files.
"""
from __future__ import annotations

import fnmatch
import functools
import inspect
import platform
import shutil
import sys
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..config import Config, dump_config
from ..io import write_json, write_text
from .folder import LOCK_FILE, OWNED_PATTERNS, RunDir, RunDirError

#: marks a folder of repeated runs written by ``lexcoder run --repeat`` (see :mod:`lexcoder.repeats`)
REPEATS_MANIFEST = "repeats_manifest.json"
from .identity import RunInputs, git_commit, package_versions


def prepare_out(run: RunDir, *, resume: bool) -> str:
    """Check that ``run.root`` may receive this run; nothing is written.

    Returns
    -------
    ``"new"`` (missing or empty folder), ``"replace"`` (a run that failed before producing a model: a plain
    rerun replaces it) or ``"resume"``.

    Raises
    ------
    RunDirError
        When the folder holds files lexcoder did not write, or already holds a run (without ``resume``).
    """
    root = run.root
    if root.exists() and not root.is_dir():
        raise RunDirError(f"The output folder {root} is a file. Choose a new folder for the run.")
    if root.is_dir():
        run.refuse_if_busy()  # a run being created looks like foreign files (no manifest yet): say it is busy
    outer = next((p for p in root.resolve().parents if RunDir(p).is_run()), None)
    if outer is not None:
        raise RunDirError(f"The output folder {root} lies inside the run folder {outer}, which holds only what that run wrote. "
                          "Choose a folder outside it.")
    if not run.is_run():
        if (root / REPEATS_MANIFEST).is_file():
            raise RunDirError(f"The output folder {root} holds repeated runs (lexcoder run --repeat), not a single "
                              "run. Use `lexcoder run ... --repeat N --resume` to continue them, or choose "
                              "another --out folder.")
        if run.manifest.is_file() and not run.foreign_entries():
            raise RunDirError(f"Run folder damaged: {run.manifest} is not a lexcoder manifest. Choose another "
                              "--out, or delete the folder.")
        # without a lexcoder manifest every file is the user's, even one named like ours (config.toml)
        _refuse_foreign(root, [e.name for e in root.iterdir() if e.name != LOCK_FILE] if root.is_dir() else [])
        return "new"
    _refuse_foreign(root, run.foreign_entries())
    if resume:
        return "resume"
    status = run.status()
    if status == "failed" and not run.has_model():
        return "replace"
    hint = {"finished": "Use --resume to finish what is missing (nothing is retrained)",
            "failed": "Use --resume to continue it", "interrupted": "Use --resume to continue it",
            "running": "It is running or was killed; use --resume to continue it"}.get(status, "Use --resume")
    raise RunDirError(f"The output folder {root} already holds a lexcoder run (status: {status}). {hint}, or choose "
                      "another --out folder.")


def _refuse_foreign(root: Path, names: list[str]) -> None:
    if names:
        names = sorted(names)
        shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        raise RunDirError(f"The output folder {root} holds files lexcoder did not create ({shown}). lexcoder only writes "
                          "into a new folder, an empty folder or a folder holding a lexcoder run: choose "
                          "another --out.")


def writes_to_run(command: str, parameter: str = "run_dir"):
    """Decorate a function that writes into the run folder passed as ``parameter``: it runs under the lock.

    A missing or foreign folder is refused before anything is created in it.
    """
    def decorate(fn):
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            target = signature.bind(*args, **kwargs).arguments[parameter]
            run = target if isinstance(target, RunDir) else RunDir(Path(target))
            if not run.config.is_file():
                run.load_config()  # raises the "not a lexcoder run directory" error
            with run.lock(command):
                return fn(*args, **kwargs)
        return wrapper
    return decorate


def check_output_file(output: str | Path, *, inputs: list[str | Path], overwrite: bool) -> None:
    """Refuse an output file that is one of the command's inputs, lies in a run folder, or exists already.

    Raises
    ------
    DataError
        Naming the path and the fix (another name, or ``--overwrite`` for an existing file that is not
        an input); nothing has been written then.
    """
    from ..errors import DataError
    from ..io import compression_of, table_format
    output = Path(output)
    for source in map(Path, inputs):
        if output.exists() and source.exists() and output.resolve() == source.resolve():
            raise DataError(f"The output file {output} is an input of this command ({source}): lexcoder never modifies its "
                            "inputs. Write to a new file.")
    if output.is_dir():
        raise DataError(f"The output {output} is a folder. Give a file name such as coded.csv or coded.parquet.")
    if RunDir(output.parent).is_run():
        raise DataError(f"The output file {output} is inside the run folder {output.parent}, which holds only what the "
                        "run wrote. Write the table elsewhere.")
    if output.exists() and not overwrite:
        raise DataError(f"The output file {output} exists. Allow overwriting it (--overwrite on the command line, overwrite=True in Python), or choose a new name.")
    table_format(output)
    compression_of(output)


def ensure_dir(path: Path) -> None:
    """Create ``path`` (and parents) or raise one clear error (a file in the way, no permission, ...)."""
    if path.exists() and not path.is_dir():
        raise RunDirError(f"{path} is a file, not a folder. Choose a new folder for the run.")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise RunDirError(f"Cannot create the folder {path}: {err.strerror}. Choose a folder you can write "
                          "to.") from None


def start_run(run: RunDir, cfg: Config, inputs: RunInputs, *, mode: str) -> dict[str, Any]:
    """Write config.toml and the manifest header of a new (or replaced, or resumed) run; hold the lock.

    Call under :meth:`RunDir.lock`. ``mode`` comes from :func:`prepare_out`.
    """
    if mode == "replace":
        clear_run(run)
    remove_debris(run.root)
    manifest = run.read_manifest() if mode == "resume" else {}
    write_text(dump_config(cfg), run.config)
    manifest.update({
        "lexcoder_version": inputs.lexcoder_version,
        "created": manifest.get("created") or datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "config_hash": inputs.config_hash,
        "inputs": inputs.__dict__.copy(),
        "status": "running",
        "error": None,
        "versions": package_versions(),
        "platform": platform.platform(),
        "git_commit": git_commit(),
        "seeds": {"split": cfg.split.seed, "evaluate": cfg.evaluate.seed,
                  "model": cfg.model.params.get("seed", 0)},
        "command": " ".join(sys.argv),
    })
    manifest.setdefault("stages", {})
    write_json(manifest, run.manifest)
    return manifest


def clear_run(run: RunDir) -> None:
    """Remove what lexcoder wrote into ``run.root`` (the lock file stays: it is held right now)."""
    for entry in run.root.iterdir():
        if entry.name == LOCK_FILE or not any(fnmatch.fnmatch(entry.name, pat) for pat in OWNED_PATTERNS):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def discard_run(run: RunDir, *, remove_folder: bool) -> None:
    """Remove everything a run wrote (the lock file included), and the folder itself if ``remove_folder``.

    Only lexcoder's own files are removed; the folder stays if anything else is in it.
    """
    clear_run(run)
    (run.root / LOCK_FILE).unlink(missing_ok=True)
    if remove_folder and not any(run.root.iterdir()):
        run.root.rmdir()


def remove_debris(root: Path) -> None:
    """Delete temporary files a killed process left behind (``.name.XXXX.tmp``) anywhere in the run."""
    if not root.is_dir():
        return
    for pattern in (".*.tmp", ".*.old"):
        for leftover in root.rglob(pattern):
            if leftover.is_dir() and not leftover.is_symlink():
                shutil.rmtree(leftover, ignore_errors=True)
            elif leftover.exists():
                leftover.unlink()


def set_status(run: RunDir, status: str, error: str | None = None) -> None:
    """Record how the run ended (``failed`` with the error message, ``interrupted``, ``finished``)."""
    if run.manifest.is_file():
        run.update_manifest(status=status, error=error,
                            ended=datetime.now(timezone.utc).isoformat(timespec="seconds"))


def stage_done(run: RunDir, name: str) -> bool:
    return bool(run.read_manifest().get("stages", {}).get(name, {}).get("done"))


@contextmanager
def stage(run: RunDir, name: str):
    """Time a stage and mark it done in the manifest only if it finishes."""
    t0 = time.perf_counter()
    yield
    manifest = run.read_manifest()
    manifest.setdefault("stages", {})[name] = {"done": True, "seconds": round(time.perf_counter() - t0, 3)}
    write_json(manifest, run.manifest)
