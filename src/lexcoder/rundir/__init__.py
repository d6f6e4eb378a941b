"""The run directory: named artifacts, the resolved config, the manifest, and the rules that keep it honest.

A run is a function of its inputs: the resolved config, the data file's sha256, the corrections ledger's
sha256 and the lexcoder version (its *identity*, recorded in ``manifest.json``). lexcoder

- writes only into a folder it owns: ``--out`` must be new, empty, or hold a lexcoder run;
- lets one process write to a run folder at a time (a lock file, released when the process ends);
- resumes only when the identity is unchanged, and says what changed otherwise;
- records the run's ``status`` (running / failed / interrupted / finished), so a run that failed before
  it produced a model is replaced by a plain rerun instead of blocking it.

Every file is written atomically (:mod:`lexcoder.io`). The parts:

- :mod:`~lexcoder.rundir.folder`: :class:`RunDir` (every artifact's name, loading, status, the lock);
- :mod:`~lexcoder.rundir.identity`: :class:`RunInputs`, :func:`config_hash`, :func:`check_resumable`;
- :mod:`~lexcoder.rundir.lifecycle`: where a command may write, starting, ending and clearing a run.
"""
from __future__ import annotations

from .folder import (ARTIFACT_NAMES, LABEL_VIEW, LOCK_FILE, OWNED_PATTERNS, THRESHOLDS_FILE, RunDir, RunDirError,
                     load_model)
from .identity import (RESUME_SAFE_KEYS, TRACKED_PACKAGES, RunInputs, check_resumable, config_hash, git_commit,
                       package_versions)
from .lifecycle import (check_output_file, clear_run, discard_run, ensure_dir, prepare_out, remove_debris,
                        set_status, stage, stage_done, start_run, writes_to_run)

__all__ = ["ARTIFACT_NAMES", "LABEL_VIEW", "LOCK_FILE", "OWNED_PATTERNS", "RESUME_SAFE_KEYS", "THRESHOLDS_FILE",
           "TRACKED_PACKAGES", "RunDir", "RunDirError", "RunInputs", "check_output_file", "check_resumable",
           "clear_run", "config_hash", "discard_run", "ensure_dir", "git_commit", "load_model",
           "package_versions", "prepare_out", "remove_debris", "set_status", "stage", "stage_done", "start_run",
           "writes_to_run"]
