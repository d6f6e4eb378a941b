"""A run's identity: what its results are a function of, and the check that a resumed run keeps it.

The identity (:class:`RunInputs`, recorded in the manifest) is the hash of the resolved config
(:func:`config_hash`, leaving out :data:`RESUME_SAFE_KEYS`, which change how a run computes, never what),
the data file's sha256, the corrections ledger's sha256 and the lexcoder version. ``--resume`` continues
a run only when all four are unchanged; otherwise :func:`check_resumable` names each change (for the
config, the keys with their old and new values) and how to start afresh.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import Config, dump_config
from ..io import file_sha256
from .folder import RunDir, RunDirError

TRACKED_PACKAGES = ("lexcoder", "numpy", "pandas", "pyarrow", "scikit-learn", "scipy", "torch",
                    "transformers", "peft", "accelerate", "cleanlab", "ppi-python")
# settings that change how a run computes or reports, never what it computes: a run may be resumed with other
# values (e.g. a lower max_tokens_per_batch after running out of GPU memory); [audit] is read only by
# `lexcoder audit`, after the run
RESUME_SAFE_KEYS = ("model.params.max_tokens_per_batch", "model.params.num_threads", "notify", "audit")


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


def _sha256_of(path: str | Path, what: str) -> str:
    from ..errors import DataError
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: {what} not found{' (it is a folder)' if p.is_dir() else ''}. Check the path.")
    try:
        return file_sha256(p)
    except OSError as err:
        raise DataError(f"{p}: the {what} cannot be read ({err.strerror}).") from None


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
            changes.append("a corrections ledger is given now but the run was started without one")
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
    from ..config import tomllib
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
