"""Checkpoints of a fine-tuning run: complete, atomic, and resumable exactly.

A checkpoint is a folder ``step-NNNNNNN`` with the trainable weights, the best weights so far, the
optimizer state and the random generators' states (safetensors), and the training state, the optimizer's
parameter groups and the scheduler (``state.json``). ``latest.json`` points at the newest complete one and
names the *fingerprint* of the training problem (data and settings), so a checkpoint is only resumed for
the same problem.
"""
from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from ..io import atomic_dir, write_json

log = logging.getLogger(__name__)

LATEST = "latest.json"


@dataclass
class TrainState:
    """Where training stands; saved in every checkpoint (``state.json``)."""

    epoch: int = 0
    batch_in_epoch: int = 0
    global_step: int = 0
    best_score: float = -1.0
    best_step: int = -1
    bad_evals: int = 0
    finished: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Checkpoint:
    """What :func:`read_checkpoint` returns (tensors on the CPU)."""

    state: TrainState
    trainable: dict[str, torch.Tensor]
    best: dict[str, torch.Tensor] | None
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    threads: int | None


def latest_checkpoint(root: Path, fingerprint: str) -> Path | None:
    """The newest complete checkpoint in ``root`` for this training problem, or None."""
    pointer = Path(root) / LATEST
    if not pointer.is_file():
        return None
    info = json.loads(pointer.read_text(encoding="utf-8"))
    if info.get("fingerprint") != fingerprint:
        log.warning("Ignoring the checkpoint in %s: it belongs to other data or settings.", root)
        return None
    path = Path(root) / info["path"]
    return path if path.is_dir() else None


def write_checkpoint(root: Path, state: TrainState, trainable: dict[str, torch.Tensor],
                     best: dict[str, torch.Tensor] | None, opt: torch.optim.Optimizer, sched: Any,
                     fingerprint: str) -> Path:
    """Write a complete checkpoint, then atomically point ``latest.json`` at it.

    The files are written into a temporary folder beside the checkpoint, flushed to disk and renamed
    (:func:`~lexcoder.io.atomic_dir`); ``latest.json`` is replaced atomically only after that, so a
    crash (kill -9, power loss) at any moment leaves ``latest.json`` pointing at a complete checkpoint.
    Older checkpoints (and debris of a killed write) are removed afterwards.
    """
    root = Path(root)
    name = f"step-{state.global_step:07d}"
    with atomic_dir(root / name) as tmp:
        save_file(trainable, tmp / "trainable.safetensors")
        if best is not None:
            save_file(best, tmp / "best.safetensors")
        tensors, groups = flatten_optimizer(opt.state_dict())
        tensors.update(rng_state())
        save_file(tensors, tmp / "optimizer_rng.safetensors")
        write_json({"train": state.__dict__, "param_groups": groups, "scheduler": sched.state_dict(),
                    "threads": torch.get_num_threads()}, tmp / "state.json")
    write_json({"path": name, "fingerprint": fingerprint}, root / LATEST)
    for old in [*root.glob("step-*"), *root.glob(".step-*")]:
        if old.name != name:
            shutil.rmtree(old, ignore_errors=True)
    log.debug("checkpoint %s", root / name)
    return root / name


def read_checkpoint(path: Path) -> Checkpoint:
    """Read a checkpoint written by :func:`write_checkpoint` and restore torch's random generators."""
    info = json.loads((path / "state.json").read_text(encoding="utf-8"))
    tensors = load_file(path / "optimizer_rng.safetensors")
    set_rng_state(tensors)
    best = load_file(path / "best.safetensors") if (path / "best.safetensors").is_file() else None
    return Checkpoint(state=TrainState(**info["train"]), trainable=load_file(path / "trainable.safetensors"),
                      best=best, optimizer=unflatten_optimizer(tensors, info["param_groups"]),
                      scheduler=info["scheduler"], threads=info.get("threads"))


def flatten_optimizer(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], list[dict[str, Any]]]:
    """An optimizer ``state_dict`` as flat tensors (for safetensors) plus JSON-able param groups."""
    tensors = {}
    for idx, slot in state["state"].items():
        for key, value in slot.items():
            tensors[f"optim.{idx}.{key}"] = torch.as_tensor(value).detach().cpu().contiguous()
    return tensors, state["param_groups"]


def unflatten_optimizer(tensors: dict[str, torch.Tensor], groups: list[dict[str, Any]]) -> dict[str, Any]:
    """Inverse of :func:`flatten_optimizer`."""
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, value in tensors.items():
        if name.startswith("optim."):
            _, idx, key = name.split(".", 2)
            state.setdefault(int(idx), {})[key] = value
    return {"state": state, "param_groups": groups}


def rng_state() -> dict[str, torch.Tensor]:
    """Torch's CPU (and CUDA) random generator states."""
    out = {"rng.cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            out[f"rng.cuda.{i}"] = s
    return out


def set_rng_state(tensors: dict[str, torch.Tensor]) -> None:
    torch.set_rng_state(tensors["rng.cpu"])
    cuda = [tensors[k] for k in sorted(tensors) if k.startswith("rng.cuda.")]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)
