"""Where and how torch runs: devices, CPU threads, int8 inference, bfloat16 on CPUs that compute it natively
(prediction, and training where asked), and the optimizer's fused kernel.

lexcoder sets torch's thread count only while it fits or predicts and puts the caller's back afterwards.
This is torch's own ``set_num_threads``, not ``threadpoolctl``: limiting torch's OpenMP pool through
threadpoolctl (``omp_set_num_threads``) was tried and measured to break exact resume — a run resumed from a
checkpoint then differed from an uninterrupted one in the 7th digit (tests/models/test_resume.py).
"""
from __future__ import annotations

import contextlib
import functools
import logging
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
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


# -- bfloat16 on the CPU ---------------------------------------------------------------------------------
BF16_ENV = "LEXCODER_CPU_BF16"
# the most a validation macro-F1 may move under bf16 autocast for "auto" to choose it (issue 15: 0.005)
BF16_MAX_F1_CHANGE = 0.005


def cpu_has_bf16() -> bool:
    """Whether this CPU has native bfloat16 matrix units (Intel AMX-BF16), where bf16 autocast can pay.

    ``$LEXCODER_CPU_BF16`` = 1 / 0 overrides the detection. Otherwise torch's own CPU capability report
    (its ``amx_bf16`` flag), else the ``amx_bf16`` flag of ``/proc/cpuinfo`` on Linux; anything else
    (another OS, an ARM CPU, an unreadable file) counts as *not* capable: without matrix units bf16 is
    emulated and was measured *slower* than float32 (benchmarks/README.md), so fp32 is the safe guess.
    """
    env = os.environ.get(BF16_ENV, "").strip().lower()
    if env:
        if env not in ("0", "1", "true", "false"):
            raise ConfigError(f"${BF16_ENV} = {env!r}: use 1 (this CPU computes bfloat16 natively) or 0 (it does "
                              "not), or unset it to let lexcoder detect it.")
        return env in ("1", "true")
    return _detected_bf16()


@functools.lru_cache(maxsize=1)
def _detected_bf16() -> bool:
    try:  # a private torch call (2.3+): a missing or changed one falls back to the flags file
        return bool(torch._C._cpu._get_cpu_capability()["amx_bf16"])
    except (AttributeError, KeyError, TypeError, RuntimeError):
        pass
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            return any(line.startswith("flags") and "amx_bf16" in line.split() for line in f)
    except OSError:
        return False


def bf16_decision(setting: bool | str, device: torch.device,
                  predict: Callable[[bool], np.ndarray] | None,
                  score: Callable[[np.ndarray], float] | None) -> dict[str, Any]:
    """Decide whether CPU prediction runs under bfloat16 autocast; returns the record saved with the model.

    Parameters
    ----------
    setting : the model's ``inference_bf16``: True / False force bf16 / float32; ``"auto"`` chooses bf16
        only on a CPU with native bf16 units (:func:`cpu_has_bf16`) and only when the validation check
        passes: the validation macro-F1 under bf16 is within :data:`BF16_MAX_F1_CHANGE` of float32's.
    device : where the model was trained (on a GPU the check does not apply: CPU prediction stays fp32)
    predict : ``predict(bf16)`` -> validation probabilities, or None without validation texts (no check:
        float32, since nothing shows bf16 is harmless)
    score : validation macro-F1 of a probability matrix

    Returns
    -------
    dict with ``setting``, ``cpu_bf16_capable``, ``checked``, ``macro_f1_fp32``, ``macro_f1_bf16``,
    ``macro_f1_change``, ``max_abs_prob_diff``, ``seconds_fp32``, ``seconds_bf16`` (the check's two passes),
    ``tolerance``, ``precision`` ("bf16" or "fp32") and ``reason``.
    """
    capable = device.type == "cpu" and cpu_has_bf16()
    record: dict[str, Any] = {"setting": setting, "cpu_bf16_capable": capable, "checked": False,
                              "tolerance": BF16_MAX_F1_CHANGE, "precision": "fp32"}
    if isinstance(setting, bool):
        record.update(precision="bf16" if setting else "fp32", reason="set by inference_bf16")
        return record
    if not capable:
        record["reason"] = ("trained on a GPU" if device.type != "cpu" else
                            "this CPU has no native bfloat16 matrix units")
        return record
    if predict is None or score is None:
        record["reason"] = "no validation texts to check bfloat16 against float32 on"
        return record
    t0 = time.perf_counter()
    P32 = predict(False)
    t1 = time.perf_counter()
    P16 = predict(True)
    t2 = time.perf_counter()
    f32, f16 = score(P32), score(P16)
    # the timings are recorded, not used: a choice that followed the machine's momentary load would make
    # a run's probabilities depend on how busy the machine was
    record.update(seconds_fp32=round(t1 - t0, 3), seconds_bf16=round(t2 - t1, 3))
    change = f16 - f32
    passed = abs(change) <= BF16_MAX_F1_CHANGE
    record.update(checked=True, macro_f1_fp32=round(f32, 6), macro_f1_bf16=round(f16, 6),
                  macro_f1_change=round(change, 6),
                  max_abs_prob_diff=float(np.abs(P16 - P32).max()) if P32.size else 0.0,
                  precision="bf16" if passed else "fp32",
                  reason=f"validation macro-F1 moved by {change:+.4f} under bfloat16 "
                         f"({'within' if passed else 'beyond'} ±{BF16_MAX_F1_CHANGE})")
    log.info("Inference precision: %s (%s).", record["precision"], record["reason"])
    return record


def bf16_in_use(setting: bool | str, device: torch.device, decision: dict[str, Any] | None) -> bool:
    """Whether prediction on ``device`` runs under bf16 autocast: forced by the setting, or ``"auto"`` with a
    recorded decision for bf16 *and* a CPU here that computes bf16 natively (a model checked on an AMX
    machine predicts in float32 on a laptop without it)."""
    if device.type != "cpu" or setting is False:
        return False
    if setting is True:
        return True
    return bool(decision and decision.get("precision") == "bf16") and cpu_has_bf16()


def bf16_training_decision(setting: bool | str, device: torch.device) -> dict[str, Any]:
    """Decide whether CPU training steps run under bfloat16 autocast; returns the record saved with the model.

    Parameters
    ----------
    setting : the model's ``train_bf16``: True / False force bf16 / float32 on the CPU; ``"auto"`` chooses bf16
        on a CPU with native bf16 units (:func:`cpu_has_bf16`), float32 elsewhere. Unlike prediction there is no
        float32 reference to check against (it would mean training twice), hence not the default.
    device : where the model trains (on a GPU training always runs under bf16 autocast, whatever the setting)

    Returns
    -------
    dict with ``setting``, ``device``, ``cpu_bf16_capable``, ``precision`` ("bf16" or "fp32") and ``reason``.
    """
    capable = device.type == "cpu" and cpu_has_bf16()
    record: dict[str, Any] = {"setting": setting, "device": device.type, "cpu_bf16_capable": capable}
    if device.type != "cpu":
        return {**record, "precision": "bf16", "reason": "on a GPU, training runs under bfloat16 autocast"}
    if isinstance(setting, bool):
        if setting and not capable:
            log.warning("train_bf16 = true on a CPU without native bfloat16 units: bfloat16 is emulated there and "
                        "was measured slower than float32.")
        return {**record, "precision": "bf16" if setting else "fp32", "reason": "set by train_bf16"}
    return {**record, "precision": "bf16" if capable else "fp32",
            "reason": "this CPU computes bfloat16 natively" if capable else
                      "this CPU has no native bfloat16 matrix units"}


def adamw(groups: list[dict[str, Any]], *, lr: float) -> torch.optim.Optimizer:
    """AdamW over parameter ``groups``, with torch's fused kernel where the parameters' device has one.

    The fused kernel updates each parameter in one pass over its memory (the for-loop default makes about ten
    passes, one per operation), which was measured to take a quarter of a CPU fine-tuning step's time for MiniLM
    (its word embeddings alone are 11.7M weights); it is also the Hugging Face Trainer's default
    (``adamw_torch_fused``). Same update up to float rounding; without a fused kernel (an older torch, another
    device) torch's default implementation.
    """
    try:
        return torch.optim.AdamW(groups, lr=lr, fused=True)
    except (RuntimeError, ValueError, TypeError) as err:  # no fused kernel for these parameters here
        log.debug("AdamW without the fused kernel (%s).", err)
        return torch.optim.AdamW(groups, lr=lr)
