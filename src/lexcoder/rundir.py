"""The run directory: named artifacts, the resolved config, the manifest, and the rules that keep it honest.

A run is a function of its inputs: the resolved config, the data file's sha256, the corrections ledger's
sha256 and the lexcoder version (its *identity*, recorded in ``manifest.json``). lexcoder

- writes only into a folder it owns: ``--out`` must be new, empty, or hold a lexcoder run;
- lets one process write to a run folder at a time (a lock file, released when the process ends);
- resumes only when the identity is unchanged, and says what changed otherwise;
- records the run's ``status`` (running / failed / interrupted / finished), so a run that failed before
  it produced a model is replaced by a plain rerun instead of blocking it.

Every file is written atomically (:mod:`lexcoder.io`).
"""
from __future__ import annotations

import fnmatch
import functools
import hashlib
import inspect
import importlib.metadata
import json
import logging
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, overload

from .config import Config, dump_config, load_config
from .errors import ConfigError, LexcoderError
from .io import file_sha256, read_json, write_json, write_text
from .safety import safe_filename

log = logging.getLogger(__name__)

TRACKED_PACKAGES = ("lexcoder", "numpy", "pandas", "pyarrow", "scikit-learn", "scipy", "torch",
                    "transformers", "peft", "accelerate", "cleanlab", "ppi-python")
LOCK_FILE = ".lexcoder.lock"
THRESHOLDS_FILE = "thresholds.json"  # in models/<kind>/, beside the saved model
LABEL_VIEW = "label_issues_{}.csv"  # the review queue of one label (``lexcoder audit --label``)


_HELD: set[str] = set()  # run folders whose lock this process holds


class RunDirError(LexcoderError):
    """The run folder cannot be used as asked (not ours, busy, damaged, or its inputs changed)."""


class _Artifact:
    """A file or folder of the run directory: ``run.<attr>`` is its path, ``RunDir.<attr>.name`` its name.

    Every name lexcoder writes into a run folder is one of these (or :data:`LABEL_VIEW`, :data:`LOCK_FILE`),
    and :data:`OWNED_PATTERNS` is built from them, so that what lexcoder writes and what it treats as its
    own cannot drift apart.
    """

    def __init__(self, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, run: None, owner: type | None = None) -> _Artifact: ...
    @overload
    def __get__(self, run: RunDir, owner: type | None = None) -> Path: ...

    def __get__(self, run: RunDir | None, owner: type | None = None) -> Path | _Artifact:
        return self if run is None else run.root / self.name


@dataclass(frozen=True)
class RunDir:
    """Paths of the artifacts in one run directory, and the one way to load its model.

    These names are the run folder's format: old runs are read by them, so they never change.
    """

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    config = _Artifact("config.toml")
    manifest = _Artifact("manifest.json")
    data = _Artifact("data.parquet")  # the original human codes, never edited
    conflicts = _Artifact("duplicate_conflicts.parquet")
    corrections_applied = _Artifact("corrections_applied.parquet")  # the ledger entries a run trained on
    splits = _Artifact("splits.parquet")
    models = _Artifact("models")
    checkpoints = _Artifact("checkpoints")
    metrics = _Artifact("metrics.json")
    predictions = _Artifact("predictions.parquet")
    audit_oof = _Artifact("audit_oof.parquet")  # out-of-fold probabilities, reused by a later audit ...
    audit_oof_key = _Artifact("audit_oof.json")  # ... when the settings that made them are unchanged
    label_issues_table = _Artifact("label_issues.parquet")  # the full review queue
    label_issues = _Artifact("label_issues.csv")  # the review queue to read in a spreadsheet
    audit_summary = _Artifact("audit_summary.json")
    corrections_report_json = _Artifact("corrections_report.json")
    corrections_report_md = _Artifact("corrections_report.md")
    report_html = _Artifact("report.html")
    report_md = _Artifact("report.md")

    def label_issues_for(self, label: str) -> Path:
        """The review queue of one label (:data:`LABEL_VIEW`), the label made safe for a file name
        (:func:`~lexcoder.safety.safe_filename`)."""
        return self.root / LABEL_VIEW.format(safe_filename(label))

    def model_dir(self, kind: str) -> Path:
        return self.models / kind

    def thresholds(self, kind: str, labels: list[str], default: float | None = None):
        """The saved decision thresholds of model ``kind`` in ``labels`` order.

        With ``default``, a missing file or label gives that value; without, either is an error.
        """
        import numpy as np
        path = self.model_dir(kind) / THRESHOLDS_FILE
        if not path.is_file():
            if default is None:
                raise RunDirError(f"{path} is missing: the run's training stage has not finished (or the run "
                                  "folder is damaged). Finish it with `lexcoder run CONFIG --out "
                                  f"{self.root} --resume`.")
            return np.full(len(labels), float(default))
        saved = self._read_artifact(path).get("thresholds")
        missing = [lab for lab in labels if not isinstance(saved, dict) or lab not in saved]
        if missing and default is None:
            raise RunDirError(f"Run folder damaged: {path} has no threshold for label(s) {missing}. Rerun "
                              "the training into a new folder.")
        return np.array([saved[lab] if lab in saved else default for lab in labels], dtype=float)

    def load_model(self):
        """The run's model (with its saved calibration), its thresholds in label order, and its config.

        The one loader of a run's model: ``predict``, the audit, the report and the Python API all see
        the same probabilities. A missing or truncated model file raises :class:`RunDirError` naming it.
        """
        from .models import load_model as load_model_folder
        cfg = self.load_config()
        directory = self.model_dir(cfg.model.kind)
        try:
            model = load_model_folder(directory)
        except LexcoderError:
            raise
        except Exception as err:  # a truncated .npy, a missing vocabulary, broken JSON, ...
            where = getattr(err, "filename", None) or directory
            raise RunDirError(f"Run folder damaged: cannot load the model in {where} ({type(err).__name__}: "
                              f"{err}). Rerun the training into a new folder.") from None
        thresholds = self.thresholds(cfg.model.kind, cfg.data.label_columns)
        if list(model.label_names_) != list(cfg.data.label_columns):
            raise RunDirError(f"Run folder damaged: the model in {directory} codes {model.label_names_} but the "
                              f"run's config lists {cfg.data.label_columns}.")
        return model, thresholds, cfg

    def split_by_id(self):
        """The split of every row ("train"/"val"/"test", or "cv" in k-fold mode), indexed by id as text."""
        import pandas as pd
        if not self.splits.is_file():
            raise RunDirError(f"{self.splits} is missing: the run has not finished its split stage.")
        splits = pd.read_parquet(self.splits, columns=["id", "split"])
        return splits.set_index(splits["id"].astype(str))["split"]

    def load_config(self) -> Config:
        if not self.config.is_file():
            raise RunDirError(f"{self.root} is not a lexcoder run directory (no config.toml). "
                              "Create one with `lexcoder run CONFIG --out DIR` or `lexcoder demo`.")
        try:
            return load_config(self.config)
        except ConfigError as err:
            raise RunDirError(f"Run folder damaged: {self.config} is not a valid lexcoder config ({err}).") from None

    def read_manifest(self) -> dict[str, Any]:
        if not self.manifest.is_file():
            return {}
        manifest = self._read_artifact(self.manifest)
        if not isinstance(manifest, dict):
            raise RunDirError(f"Run folder damaged: {self.manifest} does not hold a JSON object.")
        return manifest

    def update_manifest(self, **fields: Any) -> dict[str, Any]:
        manifest = self.read_manifest()
        manifest.update(fields)
        write_json(manifest, self.manifest)
        return manifest

    def read_table(self, path: Path):
        """A Parquet artifact of the run; a truncated or unreadable file is a :class:`RunDirError` naming it."""
        import pandas as pd
        try:
            return pd.read_parquet(path)
        except (OSError, ValueError) as err:  # pyarrow's errors derive from these
            raise RunDirError(f"Run folder damaged: {path} cannot be read ({type(err).__name__}: {err}). "
                              "Rerun into a new folder.") from None

    def _read_artifact(self, path: Path) -> Any:
        try:
            return read_json(path)
        except (OSError, ValueError) as err:
            raise RunDirError(f"Run folder damaged: {path} cannot be read ({type(err).__name__}: {err}). "
                              "Rerun into a new folder.") from None

    @contextmanager
    def all_or_nothing(self, paths: list[Path]) -> Iterator[None]:
        """Files written in the block all change together or not at all.

        Each existing file in ``paths`` is hard-linked to a hidden backup first (no extra disk space); if the
        block fails (disk full, Ctrl-C, an error) every file is put back as it was and new ones are removed,
        so a command such as the audit never leaves a queue that its summary or report does not match.
        """
        backups = {}
        for path in paths:
            if path.is_file():
                backup = path.with_name(f".{path.name}.{os.getpid()}.old")
                backup.unlink(missing_ok=True)
                os.link(path, backup)
                backups[path] = backup
        try:
            yield
        except BaseException:
            for path in paths:
                if path not in backups:
                    path.unlink(missing_ok=True)
                elif not (path.exists() and os.path.samefile(path, backups[path])):
                    # (renaming a hard link onto its twin does nothing: an unchanged file keeps its backup,
                    # which the finally clause removes)
                    os.replace(backups.pop(path), path)
            raise
        finally:
            for backup in backups.values():
                backup.unlink(missing_ok=True)

    # -- ownership ---------------------------------------------------------------------------------
    def is_run(self) -> bool:
        """Whether the folder holds a lexcoder run (a manifest lexcoder wrote)."""
        if not self.manifest.is_file():
            return False
        try:
            manifest = read_json(self.manifest)
        except (OSError, ValueError):
            return False
        return isinstance(manifest, dict) and "config_hash" in manifest

    def foreign_entries(self) -> list[str]:
        """Names in the folder that lexcoder did not write (never modified or removed by lexcoder)."""
        if not self.root.is_dir():
            return []
        return sorted(e.name for e in self.root.iterdir()
                      if not any(fnmatch.fnmatch(e.name, pat) for pat in OWNED_PATTERNS))

    def status(self) -> str | None:
        """``running``/``failed``/``interrupted``/``finished``, or None where no run was started."""
        manifest = self.read_manifest()
        if not manifest:
            return None
        if "status" in manifest:
            return manifest["status"]
        return "finished" if manifest.get("stages", {}).get("train", {}).get("done") else "failed"

    def has_model(self) -> bool:
        return bool(self.read_manifest().get("stages", {}).get("train", {}).get("done"))

    @contextmanager
    def lock(self, command: str) -> Iterator[None]:
        """Hold the folder's write lock for the block; a second writer gets a clear :class:`RunDirError`.

        The lock is an ``flock`` on ``.lexcoder.lock`` (released by the system when the process ends, so
        a killed run never leaves a stale lock). Platforms without ``fcntl`` run unlocked, with a warning.
        """
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows
            log.warning("No file locking on this platform: do not run two lexcoder commands on %s at once.",
                        self.root)
            yield
            return
        key = str(self.root.resolve())
        if key in _HELD:  # this process holds it already (e.g. the run stage rebuilding the report)
            yield
            return
        if not self.root.is_dir():
            raise RunDirError(f"{self.root} is not a folder. Give the folder of a lexcoder run.")
        path = self.root / LOCK_FILE
        try:
            fh = open(path, "a+", encoding="utf-8")
        except OSError as err:
            raise RunDirError(f"Cannot write to {self.root}: {err.strerror}. Choose a folder you can write to.") from None
        try:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                fh.seek(0)
                holder = fh.read().strip() or "another lexcoder process"
                raise RunDirError(f"{self.root} is in use by another lexcoder command ({holder}). Wait for it "
                                  "to finish, or use another --out folder.") from None
            fh.seek(0)
            fh.truncate()
            fh.write(f"pid {os.getpid()}: lexcoder {command}, since "
                     f"{datetime.now(timezone.utc).isoformat(timespec='seconds')}\n")
            fh.flush()
            _HELD.add(key)
            try:
                yield
            finally:
                _HELD.discard(key)
        finally:
            fh.close()  # closing releases the flock


# every name lexcoder writes into a run folder (their patterns: OWNED_PATTERNS)
ARTIFACT_NAMES = tuple(a.name for a in vars(RunDir).values() if isinstance(a, _Artifact))
# what lexcoder may overwrite or remove in a run folder; anything else there belongs to the user and is
# never touched. Besides lexcoder's own names: a reviewed copy of the queue saved as a workbook beside it
# ("label_issues*.xlsx", which `corrections apply` reads), so that it never blocks a --resume.
OWNED_PATTERNS = (*ARTIFACT_NAMES, LABEL_VIEW.format("*"), "label_issues*.xlsx", LOCK_FILE, ".*.tmp", ".*.old")


def load_model(path: str | Path):
    """The model of a run directory, or of a saved model folder, with its saved calibration.

    Either way the probabilities are those ``lexcoder predict`` writes: one model, one scale.
    """
    run = RunDir(Path(path))
    if run.config.is_file() and run.is_run():
        return run.load_model()[0]
    from .models import load_model as load_model_folder
    return load_model_folder(path)


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
    from .errors import DataError
    from .io import compression_of, table_format
    output = Path(output)
    for source in map(Path, inputs):
        if output.exists() and source.exists() and output.resolve() == source.resolve():
            raise DataError(f"--out {output} is an input of this command ({source}): lexcoder never modifies its "
                            "inputs. Write to a new file.")
    if output.is_dir():
        raise DataError(f"--out {output} is a folder. Give a file name such as coded.csv or coded.parquet.")
    if RunDir(output.parent).is_run():
        raise DataError(f"--out {output} is inside the run folder {output.parent}, which holds only what the "
                        "run wrote. Write the table elsewhere.")
    if output.exists() and not overwrite:
        raise DataError(f"--out {output} exists. Pass --overwrite to replace it, or choose a new name.")
    table_format(output)
    compression_of(output)


def ensure_dir(path: Path) -> None:
    """Create ``path`` (and parents) or raise one clear error (a file in the way, no permission, ...)."""
    if path.exists() and not path.is_dir():
        raise RunDirError(f"{path} is a file, not a folder. Choose a new folder for --out.")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise RunDirError(f"Cannot create the folder {path}: {err.strerror}. Choose a folder you can write "
                          "to.") from None


# settings that change how a run computes or reports, never what it computes: a run may be resumed with other
# values (e.g. a lower max_tokens_per_batch after running out of GPU memory)
RESUME_SAFE_KEYS = ("model.params.max_tokens_per_batch", "model.params.num_threads", "notify")


def config_hash(cfg: Config) -> str:
    """Hash of the resolved config without :data:`RESUME_SAFE_KEYS`: what a run's results depend on."""
    raw = cfg.model_dump(mode="json", exclude_none=True)
    for key in RESUME_SAFE_KEYS:
        *parents, leaf = key.split(".")
        node = raw
        for part in parents:
            node = node.get(part, {})
        node.pop(leaf, None)
    return hashlib.sha256(json.dumps(raw, sort_keys=True).encode()).hexdigest()[:16]


def package_versions() -> dict[str, str]:
    out = {"python": sys.version.split()[0]}
    for name in TRACKED_PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return out


def git_commit() -> str | None:
    """Commit of the lexcoder source tree, when it is a git checkout."""
    try:
        res = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                             text=True, timeout=5)
        return res.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


@dataclass(frozen=True)
class RunInputs:
    """What a run is a function of; ``--resume`` continues only when all four are unchanged."""

    config_hash: str
    data_sha256: str
    corrections_sha256: str | None
    lexcoder_version: str | None

    @classmethod
    def of(cls, cfg: Config, corrections: str | Path | None = None) -> "RunInputs":
        """The inputs of a run of ``cfg`` (hashing the data file and the ledger as they are now)."""
        return cls(config_hash=config_hash(cfg), data_sha256=_sha256_of(cfg.data.path, "data file"),
                   corrections_sha256=None if corrections is None else _sha256_of(corrections, "corrections ledger"),
                   lexcoder_version=package_versions().get("lexcoder"))

    @classmethod
    def recorded(cls, manifest: dict[str, Any]) -> "RunInputs":
        """The inputs a manifest recorded (manifests written before ``inputs`` existed included)."""
        if "inputs" in manifest:
            return cls(**manifest["inputs"])
        return cls(config_hash=manifest.get("config_hash", ""),
                   data_sha256=manifest.get("data", {}).get("sha256", ""),
                   corrections_sha256=(manifest.get("corrections") or {}).get("sha256"),
                   lexcoder_version=manifest.get("lexcoder_version"))


def _sha256_of(path: str | Path, what: str) -> str:
    from .errors import DataError
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: {what} not found{' (it is a folder)' if p.is_dir() else ''}. Check the path.")
    try:
        return file_sha256(p)
    except OSError as err:
        raise DataError(f"{p}: the {what} cannot be read ({err.strerror}).") from None


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
        raise RunDirError(f"--out {root} is a file. Choose a new folder for the run.")
    outer = next((p for p in root.resolve().parents if RunDir(p).is_run()), None)
    if outer is not None:
        raise RunDirError(f"--out {root} lies inside the run folder {outer}, which holds only what that run wrote. "
                          "Choose a folder outside it.")
    if not run.is_run():
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
    raise RunDirError(f"--out {root} already holds a lexcoder run (status: {status}). {hint}, or choose "
                      "another --out folder.")


def _refuse_foreign(root: Path, names: list[str]) -> None:
    if names:
        names = sorted(names)
        shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        raise RunDirError(f"--out {root} holds files lexcoder did not create ({shown}). lexcoder only writes "
                          "into a new folder, an empty folder or a folder holding a lexcoder run: choose "
                          "another --out.")


def check_resumable(run: RunDir, inputs: RunInputs, cfg: Config) -> None:
    """Refuse to resume when the run's inputs changed, naming each change and how to start afresh."""
    recorded = RunInputs.recorded(run.read_manifest())
    changes = []
    if recorded.config_hash != inputs.config_hash:
        changes.append("the configuration changed (" + _config_changes(run, cfg) + ")")
    if recorded.data_sha256 != inputs.data_sha256:
        changes.append(f"the data file {cfg.data.path} changed (sha256 {recorded.data_sha256[:12]}… when the "
                       f"run started, {inputs.data_sha256[:12]}… now)")
    if recorded.corrections_sha256 != inputs.corrections_sha256:
        if recorded.corrections_sha256 is None:
            changes.append("--corrections is given now but the run was started without a ledger")
        elif inputs.corrections_sha256 is None:
            changes.append("the run was started with --corrections but none is given now")
        else:
            changes.append("the corrections ledger changed since the run started")
    if recorded.lexcoder_version != inputs.lexcoder_version:
        changes.append(f"lexcoder was updated ({recorded.lexcoder_version} → {inputs.lexcoder_version})")
    if changes:
        raise RunDirError(f"Cannot resume {run.root}: " + "; ".join(changes) + ". A resumed run must have the "
                          "same inputs. Start afresh with another --out folder (or delete "
                          f"{run.root}).")


def _config_changes(run: RunDir, cfg: Config) -> str:
    """``key: old → new`` for the keys whose resolved values differ (at most five listed)."""
    from .config import tomllib
    try:
        before = _flatten(tomllib.loads(run.config.read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return "config.toml of the run cannot be read"
    after = _flatten(tomllib.loads(dump_config(cfg)))
    keys = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k)
                  and not any(k == safe or k.startswith(safe + ".") for safe in RESUME_SAFE_KEYS))
    show = lambda side, k: repr(side[k]) if k in side else "unset"  # noqa: E731
    shown = [f"{k}: {show(before, k)} → {show(after, k)}" for k in keys[:5]]
    if not shown:  # same values, other hash: a manifest written before the identity existed
        return "the run was written by an earlier lexcoder that recorded no comparable config hash"
    return "; ".join(shown) + (f"; and {len(keys) - 5} more" if len(keys) > 5 else "")


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


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
