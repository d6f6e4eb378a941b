"""The run folder: its artifacts' names, the one way to load its model, its status and its write lock.

- every file or folder lexcoder writes into a run folder is an attribute of :class:`RunDir`
  (``run.metrics`` is the path, ``RunDir.metrics.name`` the name), besides :data:`LABEL_VIEW` and
  :data:`LOCK_FILE`. These names are the run folder's format: old runs are read by them, so they never
  change. :data:`OWNED_PATTERNS` (what lexcoder may overwrite or remove) is built from them, so what lexcoder
  writes and what it treats as its own cannot drift apart;
- a damaged artifact (missing, truncated, not what it should hold) raises :class:`RunDirError` naming it
  and the fix;
- one process writes to a run folder at a time: :meth:`RunDir.lock` holds an ``flock``, which the system
  releases when the process ends, so a killed run never leaves a stale lock.
"""
from __future__ import annotations

import fnmatch
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, overload

from ..config import Config, load_config
from ..errors import ConfigError, LexcoderError
from ..io import read_json, write_json
from ..safety import safe_filename

log = logging.getLogger(__name__)

LOCK_FILE = ".lexcoder.lock"
THRESHOLDS_FILE = "thresholds.json"  # in models/<kind>/, beside the saved model
DECISION_FILE = "decision.json"  # in a categorical variable's model folder: its temperature and class bias
# a shared model (one body for labels and variables, lexcoder.train) keeps in models/<kind>/ the labels'
# calibration under its own name (it maps the labels' block only, so loading the folder as a plain model must
# not apply it) and one decision rule per variable
LABELS_CALIBRATION_FILE = "labels_calibration.json"
SHARED_DECISION_FILE = "decision_{}.json"


def shared_decision_file(variable: str) -> str:
    """The file name of a variable's decision rule beside a shared model (:data:`SHARED_DECISION_FILE`)."""
    return SHARED_DECISION_FILE.format(safe_filename(variable))
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
    batches = _Artifact("batches.parquet")  # texts `lexcoder next` handed out to code (lexcoder.active)
    coded_batches = _Artifact("coded_batches.parquet")  # ... and their codes, once `lexcoder add` read them
    review_store = _Artifact("review.sqlite")  # the review desk's events (lexcoder.review), SQLite in WAL mode

    def label_issues_for(self, label: str) -> Path:
        """The review queue of one label (:data:`LABEL_VIEW`), the label made safe for a file name
        (:func:`~lexcoder.safety.safe_filename`)."""
        return self.root / LABEL_VIEW.format(safe_filename(label))

    def model_dir(self, kind: str) -> Path:
        return self.models / kind

    def variable_model_dir(self, kind: str, variable: str) -> Path:
        """Where the model of the categorical variable ``variable`` is saved (one model per variable)."""
        from ..safety import safe_filename
        return self.models / f"{kind}-class-{safe_filename(variable)}"

    def load_variable_models(self) -> dict:
        """``{variable: model}`` for the run's categorical variables (``class_columns``), each model
        knowing its classes (``classes_``) and wrapped with its saved decision rule (:data:`DECISION_FILE`):
        ``predict_proba`` gives the temperature-scaled probabilities the run wrote and
        :func:`lexcoder.decide.decide_classes` its decisions; a run saved without a rule keeps the plain
        softmax and argmax. (To code with labels and variables, :meth:`load_models` loads a shared model once.)"""
        return self.load_models()[2]

    def load_models(self):
        """The run's labels model (None without 0/1 labels), its thresholds (None likewise) and
        ``{variable: model}`` (see :meth:`load_variable_models`), loading each saved model once.

        A run whose labels and variables share one network (:func:`lexcoder.train.shares_body`) saved one
        model: the labels and each variable are then views of it that share its forward pass
        (:class:`~lexcoder.models.shared.SharedOutputs`).
        """
        cfg = self.load_config()
        directory = self.model_dir(cfg.model.kind)
        if cfg.data.class_columns and cfg.data.label_columns and _saved_shared(directory):
            return self._load_shared(cfg, directory)
        model, thresholds = self.load_model()[:2] if cfg.data.label_columns else (None, None)
        variables = {}
        for v in cfg.data.class_columns:
            folder = self.variable_model_dir(cfg.model.kind, v)
            variables[v] = self._load_decided(self._load_folder(folder, v), folder / DECISION_FILE)
        return model, thresholds, variables

    def _load_shared(self, cfg: Config, directory: Path):
        from ..calibrate import CalibratedModel, Calibrator
        from ..models.shared import SharedOutputs
        shared = SharedOutputs(self._load_folder(directory))
        if (shared.label_names, shared.variable_names) != (list(cfg.data.label_columns), list(cfg.data.class_columns)):
            raise RunDirError(f"Run folder damaged: the model in {directory} codes {shared.label_names} and "
                              f"{shared.variable_names} but the run's config lists {cfg.data.label_columns} and "
                              f"{cfg.data.class_columns}.")
        labels = shared.labels()
        calibration = directory / LABELS_CALIBRATION_FILE
        if calibration.is_file():
            labels = CalibratedModel(labels, self._read_saved(Calibrator.load, calibration))
        variables = {v: self._load_decided(shared.variable(v), directory / shared_decision_file(v))
                     for v in cfg.data.class_columns}
        return labels, self.thresholds(cfg.model.kind, cfg.data.label_columns), variables

    def _load_folder(self, directory: Path, variable: str | None = None):
        """A saved model folder (with its saved calibration); a damaged one raises :class:`RunDirError`."""
        from ..models import load_model as load_model_folder
        try:
            return load_model_folder(directory)
        except LexcoderError:
            raise
        except Exception as err:  # a truncated .npy, a missing vocabulary, broken JSON, ...
            where = getattr(err, "filename", None) or directory
            what = "the model" if variable is None else f"the model of {variable!r}"
            raise RunDirError(f"Run folder damaged: cannot load {what} in {where} ({type(err).__name__}: "
                              f"{err}). Rerun the training into a new folder.") from None

    @staticmethod
    def _load_decided(model, path: Path):
        from ..decide import with_saved_decision
        try:
            return with_saved_decision(model, path)
        except LexcoderError as err:
            raise RunDirError(f"Run folder damaged: {err}") from None

    @staticmethod
    def _read_saved(load, path: Path):
        try:
            return load(path)
        except Exception as err:
            raise RunDirError(f"Run folder damaged: cannot read {path} ({type(err).__name__}: {err}). Rerun the "
                              "training into a new folder.") from None

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
        """The run's model of the 0/1 labels (with its saved calibration), its thresholds in label order, and
        its config.

        The one loader of a run's model: ``predict``, the audit, the report and the Python API all see
        the same probabilities. A missing or truncated model file raises :class:`RunDirError` naming it.
        In a run whose labels and variables share one network this is the labels' view of it.
        """
        cfg = self.load_config()
        directory = self.model_dir(cfg.model.kind)
        if cfg.data.class_columns and cfg.data.label_columns and _saved_shared(directory):
            return (*self._load_shared(cfg, directory)[:2], cfg)
        model = self._load_folder(directory)
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

    def holder(self) -> str | None:
        """Who holds the folder's write lock now (another process), or ``None`` when nobody does.

        Checked before the lock is taken, so that a second command sees a run being created (a half-written
        folder) as busy rather than as a folder of someone else's files.
        """
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows: no locks to ask
            return None
        path = self.root / LOCK_FILE
        if str(self.root.resolve()) in _HELD or not path.is_file():
            return None
        try:
            with open(path, encoding="utf-8") as fh:
                try:
                    fcntl.flock(fh, fcntl.LOCK_SH | fcntl.LOCK_NB)  # released when the file closes
                except BlockingIOError:
                    return fh.read().strip() or "another lexcoder process"
        except OSError:
            return None
        return None

    def refuse_if_busy(self) -> None:
        """Raise the "in use" :class:`RunDirError` when another process holds the folder's lock."""
        holder = self.holder()
        if holder is not None:
            raise self._busy(holder)

    def _busy(self, holder: str) -> RunDirError:
        return RunDirError(f"{self.root} is in use by another lexcoder command ({holder}). Wait for it to finish, "
                           "or use another --out folder.")

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
                raise self._busy(fh.read().strip() or "another lexcoder process") from None
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
# ("label_issues*.xlsx", which `corrections apply` reads), so that it never blocks a --resume; and SQLite's
# companion files of the review store (its write-ahead log and shared memory, "review.sqlite-wal"/"-shm").
OWNED_PATTERNS = (*ARTIFACT_NAMES, LABEL_VIEW.format("*"), "label_issues*.xlsx", f"{RunDir.review_store.name}-*",
                  LOCK_FILE, ".*.tmp", ".*.old")


def load_model(path: str | Path):
    """The model of a run directory, or of a saved model folder, with its saved calibration.

    Either way the probabilities are those ``lexcoder predict`` writes: one model, one scale.
    """
    run = RunDir(Path(path))
    if run.config.is_file() and run.is_run():
        return run.load_model()[0]
    from ..models import load_model as load_model_folder
    return load_model_folder(path)


def _saved_shared(directory: Path) -> bool:
    """Whether the model saved in ``directory`` learnt labels and variables together (its ``meta.json``)."""
    from ..models.base import META_FILE
    from ..models.outputs import MULTIOUTPUT
    try:
        return read_json(directory / META_FILE).get("target_type") == MULTIOUTPUT
    except Exception:  # missing or damaged: the plain loader names the problem
        return False
