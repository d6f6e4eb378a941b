"""The run directory: named artifacts, the resolved config and the manifest (see DESIGN.md).

Every file is written atomically; the manifest records what produced the run (data hash, versions,
seeds, git commit) and how long each stage took, and lets an interrupted run resume stage by stage.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import platform
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .config import Config, dump_config, load_config
from .errors import LexcoderError
from .io import read_json, write_json, write_text

TRACKED_PACKAGES = ("lexcoder", "numpy", "pandas", "pyarrow", "scikit-learn", "scipy", "torch",
                    "transformers", "peft", "accelerate", "cleanlab", "krippendorff", "ppi-python")


@dataclass(frozen=True)
class RunDir:
    """Paths of the artifacts in one run directory."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    config = property(lambda self: self.root / "config.toml")
    manifest = property(lambda self: self.root / "manifest.json")
    data = property(lambda self: self.root / "data.parquet")
    conflicts = property(lambda self: self.root / "duplicate_conflicts.parquet")
    splits = property(lambda self: self.root / "splits.parquet")
    metrics = property(lambda self: self.root / "metrics.json")
    predictions = property(lambda self: self.root / "predictions.parquet")
    label_issues = property(lambda self: self.root / "label_issues.csv")
    report_html = property(lambda self: self.root / "report.html")
    report_md = property(lambda self: self.root / "report.md")
    models = property(lambda self: self.root / "models")

    def model_dir(self, kind: str) -> Path:
        return self.models / kind

    def thresholds(self, kind: str, labels: list[str], default: float | None = None):
        """The saved decision thresholds of model ``kind`` in ``labels`` order.

        With ``default``, a missing file or label gives that value; without, a missing file is an error.
        """
        import numpy as np
        path = self.model_dir(kind) / "thresholds.json"
        if not path.is_file():
            if default is None:
                raise LexcoderError(f"{path} is missing: the run's training stage has not finished.")
            return np.full(len(labels), float(default))
        saved = read_json(path)["thresholds"]
        return np.array([saved[lab] if default is None else saved.get(lab, default) for lab in labels])

    def split_by_id(self):
        """The split of every row ("train"/"val"/"test", or "cv" in k-fold mode), indexed by id as text."""
        import pandas as pd
        if not self.splits.is_file():
            raise LexcoderError(f"{self.splits} is missing: the run has not finished its split stage.")
        splits = pd.read_parquet(self.splits, columns=["id", "split"])
        return splits.set_index(splits["id"].astype(str))["split"]

    def load_config(self) -> Config:
        if not self.config.is_file():
            raise LexcoderError(f"{self.root} is not a lexcoder run directory (no config.toml). "
                                "Create one with `lexcoder run CONFIG --out DIR` or `lexcoder demo`.")
        return load_config(self.config)

    def read_manifest(self) -> dict[str, Any]:
        return read_json(self.manifest) if self.manifest.is_file() else {}

    def update_manifest(self, **fields: Any) -> dict[str, Any]:
        manifest = self.read_manifest()
        manifest.update(fields)
        write_json(manifest, self.manifest)
        return manifest


def config_hash(cfg: Config) -> str:
    return hashlib.sha256(dump_config(cfg).encode()).hexdigest()[:16]


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


def start_run(run: RunDir, cfg: Config, *, resume: bool) -> dict[str, Any]:
    """Create (or, with ``resume``, reopen) the run directory and write config + manifest header."""
    if run.root.exists() and any(run.root.iterdir()) and not resume:
        old = run.read_manifest()
        if old:
            raise LexcoderError(f"{run.root} already holds a run. Use --resume to continue it, or choose "
                                "another --out directory.")
    run.root.mkdir(parents=True, exist_ok=True)
    manifest = run.read_manifest() if resume else {}
    if resume and manifest.get("config_hash") not in (None, config_hash(cfg)):
        # a changed config invalidates every finished stage
        manifest["stages"] = {}
    write_text(dump_config(cfg), run.config)
    manifest.update({
        "lexcoder_version": package_versions().get("lexcoder"),
        "created": manifest.get("created") or datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "config_hash": config_hash(cfg),
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
