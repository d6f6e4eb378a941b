"""Data-parallel fine-tuning on several GPUs (or CPU processes) through Hugging Face Accelerate.

``accelerate launch -m lexcoder run cfg.toml --out RUN`` (or ``lexcoder run ... --processes N``, which starts
exactly that) runs one process per device. Accelerate sets up the process group (NCCL on GPUs, gloo on CPUs)
and gives each process its device; lexcoder then divides the work:

- **Rank 0 drives, the others follow.** Only the main process runs the pipeline (reading the data, the run
  lock, the manifest, checkpoints, models, metrics, the report, logs and progress bars). Whenever it fits a
  fine-tuned model it sends the call (the unfitted model and the fit's arguments) to the other processes,
  which make the same call (:func:`replicated_fit`, :meth:`ParallelSession.serve`) and write nothing. So the
  stages a run skips on ``--resume``, and everything that is not fine-tuning, run once, on rank 0.
- **One global batch, sharded.** Every process builds the same length-grouped batches as a single process
  would (they depend only on the seed and epoch); process ``r`` of ``n`` takes texts ``r, r+n, ...`` of each
  batch (:meth:`ParallelSession.shard`), weighting each text's loss by ``1 / len(global batch)``; the summed
  gradients (:meth:`ParallelSession.sync_gradients`) are then those of the whole batch, and every process
  makes the same AdamW step: the update is the single-process one up to float rounding.
- **Evaluation** (early stopping) predicts a shard of the validation texts in each process; the
  probabilities are gathered, so every process computes the same score and stops at the same step.
- **Checkpoints**: rank 0 writes them; on resume it reads the newest and sends it to the others (the run
  folder need not be visible from every node).

Why the gradients are summed with one all-reduce per bucket after the batch rather than by wrapping the
network in ``DistributedDataParallel``: lexcoder's step runs a variable number of micro-batches per process
(texts are packed under ``max_tokens_per_batch``), long texts run in checkpointed chunks whose forward pass
is recomputed inside the backward pass, a short last batch leaves some processes without a text, and
sentence-transformers encoders carry a pooler that never gets a gradient. DDP's reducer needs one forward
and backward per step on every process, and either fails or hangs in each of these cases. Summing the
finished gradients costs one all-reduce of the trainable weights per step (a few MB for LoRA).
"""
from __future__ import annotations

import contextlib
import logging
import os
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError

log = logging.getLogger(__name__)

#: most elements summed in one all-reduce (64 MB of float32)
BUCKET_NUMEL = 16 * 2**20
#: file in which rank 0 records its exit status for :func:`launch` (torchrun itself exits 1 on any failure)
STATUS_ENV = "LEXCODER_PARALLEL_STATUS"
_SESSION: "ParallelSession | None" = None


def launched() -> bool:
    """Whether this process is one of several started by ``accelerate launch`` / ``torchrun``."""
    return int(os.environ.get("WORLD_SIZE", "1") or 1) > 1


def current() -> "ParallelSession | None":
    """The data-parallel session of this process (None: a single process)."""
    return _SESSION


@dataclass
class FitCall:
    """A ``fit`` that rank 0 makes and every other process repeats."""

    model: Any  # the unfitted model (a clone: its settings only)
    args: tuple
    kwargs: dict[str, Any]


@dataclass
class ParallelSession:
    """This process's part in data-parallel training (made by :func:`session`)."""

    accelerator: Any
    fitting: bool = False
    broken: bool = False

    @property
    def rank(self) -> int:
        return int(self.accelerator.process_index)

    @property
    def world(self) -> int:
        return int(self.accelerator.num_processes)

    @property
    def is_main(self) -> bool:
        return bool(self.accelerator.is_main_process)

    @property
    def device(self) -> torch.device:
        return torch.device(self.accelerator.device)

    # -- messages ----------------------------------------------------------------------------------
    def share(self, obj: Any) -> Any:
        """Rank 0's ``obj`` in every process (the others pass anything, usually None)."""
        box = [obj if self.is_main else None]
        torch.distributed.broadcast_object_list(box, src=0, device=self._object_device())
        return box[0]

    def _object_device(self) -> torch.device | None:
        return self.device if self.device.type == "cuda" else None

    def serve(self, on_fit: Callable[[Any], None] | None = None) -> int:
        """On a process other than rank 0: repeat rank 0's fits until it says it has finished.

        Nothing is saved; ``on_fit`` (for inspection) is called with each fitted model. Returns the number
        of fits made.
        """
        n = 0
        while (call := self.share(None)) is not None:
            with self.fit_scope():
                model = call.model.fit(*call.args, **call.kwargs)
            if on_fit is not None:
                on_fit(model)
            del model  # freed before the next fit builds its network
            n += 1
        return n

    def release(self) -> None:
        """On rank 0, when the run has ended: let the other processes leave :meth:`serve`.

        Not after a fit failed half-way: the others then wait inside that fit's collective operations, and
        the launcher ends them when this process exits with an error.
        """
        if self.is_main and not self.broken:
            self.share(None)

    @contextlib.contextmanager
    def fit_scope(self) -> Iterator[None]:
        """Marks the outermost fit (the fits of a model's parts run inside it and are not sent again)."""
        self.fitting = True
        try:
            yield
        except BaseException:
            self.broken = True
            raise
        finally:
            self.fitting = False

    # -- training ----------------------------------------------------------------------------------
    def shard(self, batch: np.ndarray) -> np.ndarray:
        """This process's texts of a global batch (every ``world``-th, so shards have similar lengths)."""
        return batch[self.rank::self.world]

    def step_seed(self, seed: int, step: int) -> int:
        """The torch seed of an optimizer step in this process (dropout): a function of the seed, the step
        and the rank alone, so a resumed run draws what an uninterrupted one would have."""
        return int(np.random.SeedSequence([seed, step, self.rank]).generate_state(1)[0])

    def sync_gradients(self, params: Sequence[torch.nn.Parameter]) -> None:
        """Sum the gradients of ``params`` over the processes, in place.

        A parameter without a gradient in any process (an unused pooler) keeps ``grad = None``, as in one
        process, so AdamW skips it there too; one that has a gradient somewhere gets the sum (zeros where
        a process had no text).
        """
        for bucket in _buckets(list(params), BUCKET_NUMEL):
            used = torch.tensor([p.grad is not None for p in bucket], dtype=torch.float32, device=bucket[0].device)
            flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1).float()
                              for p in bucket] + [used])
            torch.distributed.all_reduce(flat)
            offset = 0
            for p, is_used in zip(bucket, flat[-len(bucket):].tolist()):
                n = p.numel()
                p.grad = flat[offset:offset + n].view_as(p).to(p.dtype).clone() if is_used else None
                offset += n

    def sum(self, values: Sequence[float]) -> list[float]:
        """Each of ``values`` summed over the processes."""
        t = torch.tensor(list(values), dtype=torch.float64, device=self.device)
        torch.distributed.all_reduce(t)
        return t.tolist()

    def predict_sharded(self, texts: Any, predict: Callable[[Any], np.ndarray]) -> np.ndarray:
        """``predict(texts)`` with each process predicting every ``world``-th text; the full matrix in all."""
        n = len(texts)
        mine = np.arange(self.rank, n, self.world)
        parts: list[Any] = [None] * self.world
        torch.distributed.all_gather_object(parts, predict(rows_of(texts, mine)))
        P = np.empty((n, parts[0].shape[1]), dtype=parts[0].dtype)
        for r, part in enumerate(parts):
            P[r::self.world] = part
        return P


def _buckets(params: list[torch.nn.Parameter], limit: int) -> Iterator[list[torch.nn.Parameter]]:
    """Consecutive groups of ``params`` of at most ``limit`` elements (a larger parameter alone)."""
    bucket: list[torch.nn.Parameter] = []
    size = 0
    for p in params:
        if bucket and size + p.numel() > limit:
            yield bucket
            bucket, size = [], 0
        bucket.append(p)
        size += p.numel()
    if bucket:
        yield bucket


def rows_of(texts: Any, idx: np.ndarray) -> Any:
    """The texts at positions ``idx``: a list, or a DataFrame of context inputs (index 0..k-1)."""
    if hasattr(texts, "iloc"):
        picked = texts.iloc[idx]
        return picked.reset_index(drop=True) if picked.ndim == 2 else picked.tolist()
    return [texts[int(i)] for i in idx]


def replicated_fit(model: Any, fit: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``fit(*args, **kwargs)``; in a data-parallel session rank 0 first sends the call to the other
    processes (which repeat it in :meth:`ParallelSession.serve`)."""
    dp = current()
    if dp is None or dp.fitting:
        return fit(*args, **kwargs)
    if dp.is_main:
        from sklearn.base import clone
        dp.share(FitCall(model=clone(model), args=args, kwargs=kwargs))
    with dp.fit_scope():
        return fit(*args, **kwargs)


def training_device(device: str | None) -> torch.device | None:
    """This process's device in a data-parallel session (None: not in one; the model's own choice then)."""
    dp = current()
    if dp is None:
        return None
    if device not in (None, "", "auto") and torch.device(device) != dp.device:
        log.warning("device = %r is replaced by %s: with several processes each trains on its own device.",
                    device, dp.device)
    return dp.device


@contextlib.contextmanager
def session(*, cpu: bool = False) -> Iterator[ParallelSession | None]:
    """Join the processes started by the launcher for the block (None when this is the only process).

    The processes other than rank 0 log errors only and show no progress bars; every process uses its share
    of the node's cores for torch's threads (unless ``$LEXCODER_NUM_THREADS`` or ``num_threads`` say otherwise).
    """
    global _SESSION
    if not launched():
        yield None
        return
    from accelerate import Accelerator
    cpu = cpu or not torch.cuda.is_available()
    accelerator = Accelerator(cpu=cpu)
    dp = ParallelSession(accelerator)
    # the processes of a node share its cores (torch's default would give each of them all the cores)
    local = int(os.environ.get("LOCAL_WORLD_SIZE", dp.world) or dp.world)
    from .torch_runtime import THREADS_ENV, default_threads
    os.environ.setdefault(THREADS_ENV, str(max(1, default_threads() // local)))
    if not dp.is_main:
        os.environ["LEXCODER_PROGRESS"] = "0"
        logging.getLogger().setLevel(logging.ERROR)
        from transformers.utils import logging as hf_logging
        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    _SESSION = dp
    try:
        yield dp
    finally:
        _SESSION = None
        _close(dp)


def _close(dp: ParallelSession) -> None:
    """Destroy the process group when this process leaves the session (a local step: no message is sent).
    Left to the interpreter's exit, a gloo group's threads can still be running while the process ends, which
    now and then aborts it ("terminate called without an active exception", exit -6) although the run had
    finished. Not after a broken fit: the other processes then wait inside its collectives, and the launcher
    ends them."""
    if not dp.broken and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


# -- starting the processes ------------------------------------------------------------------------------
def launch(argv: list[str], processes: int) -> int:
    """Run ``python -m lexcoder <argv>`` in ``processes`` processes with ``accelerate launch``; its exit code.

    ``accelerate launch`` (torchrun underneath) starts fresh interpreters, gives each its rank and device,
    and ends them all when one fails; forking this process instead (``notebook_launcher``) would copy a
    process whose torch threads and CUDA state are already set up.
    """
    check_processes(processes)
    fd, status = tempfile.mkstemp(prefix="lexcoder-status-", suffix=".txt")
    os.close(fd)
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(processes),
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "--main_process_port", str(free_port()), "-m", "lexcoder", *argv]
    log.info("Starting %d processes: %s", processes, " ".join(cmd[1:]))
    try:
        code = subprocess.run(cmd, check=False, env={**os.environ, STATUS_ENV: status}).returncode
        recorded = Path(status).read_text(encoding="utf-8").strip()
    finally:
        os.unlink(status)
    # rank 0's own status (2: an error the user can fix, 130: interrupted) rather than torchrun's 1
    return int(recorded) if code and recorded.isdigit() else code


def record_exit(code: int) -> None:
    """On rank 0: record the exit status for the ``lexcoder run --processes`` that started the processes."""
    path = os.environ.get(STATUS_ENV)
    if path and current() is not None and current().is_main:
        Path(path).write_text(str(int(code)), encoding="utf-8")


def check_processes(processes: int) -> None:
    """Refuse more processes than GPUs (where there are GPUs)."""
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if gpus and processes > gpus:
        raise ConfigError(f"--processes {processes}, but this machine has {gpus} GPU(s): use at most one process "
                          f"per GPU (--processes {gpus}).")
    if not gpus:
        log.warning("No CUDA GPU: the %d processes train on the CPU (gloo), each with its share of the cores.",
                    processes)


def free_port() -> int:
    """A TCP port free right now on this machine (for the processes' rendezvous)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
