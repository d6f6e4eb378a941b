"""Where and how torch runs: devices, CPU threads, int8 inference.

lexcoder sets torch's thread count only while it fits or predicts and puts the caller's back afterwards.
This is torch's own ``set_num_threads``, not ``threadpoolctl``: limiting torch's OpenMP pool through
threadpoolctl (``omp_set_num_threads``) was tried and measured to break exact resume — a run resumed from a
checkpoint then differed from an uninterrupted one in the 7th digit (tests/models/test_resume.py).
"""
from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator

import torch

from ..errors import ConfigError

log = logging.getLogger(__name__)

THREADS_ENV = "LEXCODER_NUM_THREADS"


@contextlib.contextmanager
def torch_threads(num_threads: int | None) -> Iterator[int]:
    """Run the block with ``num_threads`` torch CPU threads (0/None: :func:`default_threads`); yields the
    count and restores the caller's count afterwards, so lexcoder's setting never leaks into the process."""
    n = int(num_threads or default_threads())
    previous = torch.get_num_threads()
    if n != previous:
        torch.set_num_threads(n)
    try:
        yield n
    finally:
        if torch.get_num_threads() != previous:
            torch.set_num_threads(previous)


def default_threads() -> int:
    """``$LEXCODER_NUM_THREADS``, else the number of cores this process may run on.

    Deterministic on purpose: the thread count sets the order of float reductions, so a default that
    followed the machine's momentary load would make results depend on how busy it was. On a shared
    machine, set ``$LEXCODER_NUM_THREADS`` (or ``num_threads``) to the cores you may use: more threads than
    free cores make every matrix product wait for descheduled threads.
    """
    env = os.environ.get(THREADS_ENV, "").strip()
    if env:
        if not env.isdigit() or int(env) < 1:
            raise ConfigError(f"${THREADS_ENV} = {env!r}: use a whole number of threads >= 1, or unset it.")
        return int(env)
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1  # pragma: no cover - macOS and Windows have no CPU affinity call


def pick_device(device: str | None) -> torch.device:
    """``"cpu"``, ``"cuda[:i]"``, or CUDA when available for ``"auto"``/None (for training)."""
    if device in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device = {device!r} but no CUDA GPU is available here; use device = \"cpu\".")
    return torch.device(device)


def load_device(device: str | None) -> torch.device:
    """Where a saved model predicts: the device it was trained with, else one that exists here.

    A model trained on a GPU must still predict on a laptop: a CUDA device that is not available falls
    back to the CPU (float32; the GPU computed under bfloat16 autocast, so probabilities may differ in the
    last digits), and a GPU index this machine lacks to the first GPU.
    """
    if str(device or "").startswith("cuda"):
        wanted = torch.device(device)
        if not torch.cuda.is_available():
            log.warning("This model was trained on device = %r and no CUDA GPU is available here: predicting "
                        "on the CPU instead.", device)
            return torch.device("cpu")
        if wanted.index is not None and wanted.index >= torch.cuda.device_count():
            log.warning("This model was trained on device = %r; this machine has %d GPU(s): using cuda:0.",
                        device, torch.cuda.device_count())
            return torch.device("cuda", 0)
    return pick_device(device)


def quantize_int8(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of ``model`` whose ``nn.Linear`` layers run in dynamic int8 (CPU inference only)."""
    import copy
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization is deprecated in favour of torchao
        return torch.ao.quantization.quantize_dynamic(copy.deepcopy(model), {torch.nn.Linear}, dtype=torch.qint8)
