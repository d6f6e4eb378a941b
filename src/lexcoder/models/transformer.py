"""The shared torch core of the fine-tuned families (encoders and decoder LLMs).

:class:`TransformerClassifier` holds everything the families share: tokenisation into overlapping windows
with dynamic padding, length-grouped batches, window pooling, the multi-label loss (BCE with capped
per-label ``pos_weight``, optional focal loss), AdamW with linear warm-up, evaluation on the validation
texts with early stopping on macro-F1, checkpoints with exact resume, and a fast inference path.
Subclasses only say how to build and save the network (``_build_model``, ``_build_tokenizer``,
``_save_weights``, ``_load_weights``, ``_trainable_parameters``).

Texts longer than ``max_length`` tokens are cut into windows that overlap by ``stride`` tokens; a text's
logits are pooled over its windows (``"max"``: the most confident window; ``"mean"``: mean probability)
both during training (the loss sees the pooled text-level prediction) and prediction.

No forward pass holds more than ``max_tokens_per_batch`` tokens (windows x longest window, padding
included), so a batch of long judgments cannot exhaust the GPU's memory: a training batch is cut into
micro-batches of whole texts whose gradients add up to the batch's, and a text with more windows than one
pass may hold runs its windows in checkpointed chunks (each chunk's activations are recomputed in the
backward pass, one chunk at a time).

Torch's CPU thread count is set only while lexcoder fits or predicts, and put back afterwards.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from scipy.special import expit as sigmoid  # the logistic function, stable for any logit

from ..errors import ConfigError, LexcoderError
from ..io import atomic_dir, write_json
from ..progress import track
from ..thresholds import f1_curve
from .base import TextClassifier, check_training_data
from .pretrained import resolve_model_path

log = logging.getLogger(__name__)

_POOLING = ("max", "mean")
_LATEST = "latest.json"
_THREADS_ENV = "LEXCODER_NUM_THREADS"
# settings that change how much memory a step takes, not what it computes (beyond float rounding): a run
# that ran out of memory can be resumed from its checkpoint with a smaller cap
_MEMORY_ONLY = ("max_tokens_per_batch",)


@dataclass
class Encoded:
    """Texts tokenised into windows.

    Attributes
    ----------
    ids : token ids, one list per window (``n_windows`` lists)
    owner : (n_windows,) index of the text each window belongs to
    n_texts : number of texts
    """

    ids: list[list[int]]
    owner: np.ndarray
    n_texts: int

    def text_lengths(self) -> np.ndarray:
        """(n_texts,) total number of tokens of each text over its windows."""
        return np.bincount(self.owner, weights=[len(w) for w in self.ids], minlength=self.n_texts)

    def windows_of(self) -> list[np.ndarray]:
        """For each text, the indices of its windows."""
        order = np.argsort(self.owner, kind="stable")
        return np.split(order, np.cumsum(np.bincount(self.owner, minlength=self.n_texts))[:-1])


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


class TransformerClassifier(TextClassifier):
    """Fine-tune a pretrained transformer as a multi-label classifier (one sigmoid per label).

    Parameters
    ----------
    name : pretrained model: alias (``"minilm"``), local directory or cached hub id
    max_length : tokens per window (default 256); longer texts are split into overlapping windows
    stride : tokens shared by consecutive windows of a long text (0 or None: a quarter of ``max_length``)
    pooling : ``"max"`` or ``"mean"``: how window probabilities become the text's probability
    batch_size : texts per training batch
    eval_batch_size : windows per prediction batch
    max_tokens_per_batch : most tokens (windows x longest window, padding included) in one forward pass,
        training or prediction; at least ``max_length``. None: ``batch_size * max_length`` in training and
        ``eval_batch_size * max_length`` in prediction, so only batches with multi-window texts are split.
        Lower it if long texts exhaust the GPU's memory: the update stays that of the whole batch
    epochs : passes over the training texts (early stopping may end sooner)
    max_steps : stop after this many optimizer steps (0 or None: no limit)
    lr : peak learning rate of AdamW (after linear warm-up, decays linearly to 0)
    head_lr : learning rate of the classification head (0 or None: ``lr``); a larger one helps rare labels
    weight_decay : AdamW weight decay (not applied to biases and norms)
    warmup_ratio : fraction of the training steps spent warming up
    pos_weight_cap : per-label positive weight = negatives / positives, capped at this (1: unweighted)
    focal_gamma : 0 = plain BCE; > 0 = focal loss with this gamma
    negative_ratio : each epoch trains on every text with a positive code plus this many times as many
        texts without any, drawn afresh every epoch (None: every text every epoch). With rare labels this
        gives each epoch more positive updates per second; probabilities are then biased upwards, which the
        validation-tuned thresholds absorb (calibrate them if you need probabilities)
    eval_steps : also evaluate every this many steps (0 or None: once per epoch)
    patience : stop after this many evaluations without a better validation macro-F1 (0 or None: never)
    checkpoint_steps : with ``checkpoint_dir`` set, checkpoint every this many steps (and every epoch)
    quantize_int8 : CPU prediction with dynamic int8 quantisation of the linear layers (faster)
    inference_bf16 : CPU prediction under bfloat16 autocast (fast on CPUs with AMX; check agreement)
    num_threads : torch CPU threads while fitting/predicting (0 or None: ``$LEXCODER_NUM_THREADS``, else the
        cores this process may use); the caller's setting is restored afterwards
    device : ``"cpu"``, ``"cuda"``, or ``"auto"``/None (CUDA when available; bf16 autocast on CUDA)
    seed : seeds weight initialisation, batch order and dropout
    """

    kind = "transformer"

    def __init__(self, *, name: str = "minilm", max_length: int = 256, stride: int | None = None, pooling: str = "max",
                 batch_size: int = 16, eval_batch_size: int = 64, max_tokens_per_batch: int | None = None,
                 epochs: int = 3, max_steps: int | None = None,
                 lr: float = 5e-5, head_lr: float | None = None, weight_decay: float = 0.01,
                 warmup_ratio: float = 0.1, pos_weight_cap: float = 10.0, focal_gamma: float = 0.0,
                 negative_ratio: float | None = None,
                 eval_steps: int | None = None, patience: int | None = 2, checkpoint_steps: int = 200,
                 quantize_int8: bool = False, inference_bf16: bool = False, num_threads: int | None = None,
                 device: str | None = None, seed: int = 0, **extra: Any) -> None:
        super().__init__(name=name, max_length=max_length, stride=stride, pooling=pooling,
                         batch_size=batch_size, eval_batch_size=eval_batch_size,
                         max_tokens_per_batch=max_tokens_per_batch, epochs=epochs,
                         max_steps=max_steps, lr=lr, head_lr=head_lr, weight_decay=weight_decay,
                         warmup_ratio=warmup_ratio, pos_weight_cap=pos_weight_cap, focal_gamma=focal_gamma,
                         negative_ratio=negative_ratio,
                         eval_steps=eval_steps, patience=patience, checkpoint_steps=checkpoint_steps,
                         quantize_int8=quantize_int8, inference_bf16=inference_bf16, num_threads=num_threads,
                         device=device, seed=seed, **extra)
        unknown = sorted(set(extra) - declared_params(type(self)))
        if unknown:
            raise TypeError(f"{type(self).__name__} got unknown parameter(s) {unknown}; valid parameters: "
                            f"{', '.join(sorted(declared_params(type(self))))}")
        self.checkpoint_dir: Path | None = None  # set by the pipeline: checkpoint there and resume from it

    # -- hooks for subclasses ---------------------------------------------------------------------
    def _build_model(self, num_labels: int) -> torch.nn.Module:
        """A fresh ``*ForSequenceClassification`` with ``problem_type="multi_label_classification"``."""
        raise NotImplementedError

    def _build_tokenizer(self):
        """The tokenizer (a fast Hugging Face tokenizer with a pad token)."""
        from transformers import AutoTokenizer
        return AutoTokenizer.from_pretrained(self._source(), local_files_only=True)

    def _trainable_parameters(self) -> list[torch.nn.Parameter]:
        """Parameters the optimizer updates (default: all of them)."""
        return [p for p in self.model_.parameters() if p.requires_grad]

    def _head_parameter_names(self) -> set[str]:
        """Names of the classification head's parameters (they may get ``head_lr``)."""
        heads = ("classifier.", "score.")
        return {n for n, _ in self.model_.named_parameters() if any(h in n for h in heads)}

    def _save_weights(self, directory: Path) -> None:
        """Save the network (default: ``save_pretrained`` with safetensors into ``directory/model``)."""
        self.model_.save_pretrained(directory / "model", safe_serialization=True)

    @classmethod
    def _load_weights(cls, directory: Path, meta: dict[str, Any], device: torch.device) -> torch.nn.Module:
        """Load the network saved by :meth:`_save_weights` for ``device`` (float32, as it was trained)."""
        from transformers import AutoModelForSequenceClassification
        return AutoModelForSequenceClassification.from_pretrained(directory / "model", local_files_only=True,
                                                                  dtype=torch.float32)

    def _source(self) -> str:
        """Local path (or cached id) of the pretrained model."""
        return resolve_model_path(self.params["name"])

    # -- tokenisation and batching ----------------------------------------------------------------
    def _encode(self, texts: Sequence[str]) -> Encoded:
        """Tokenise ``texts`` into windows of at most ``max_length`` tokens (special tokens included)."""
        p = self.params
        enc = self.tokenizer_(list(texts), truncation=True, max_length=p["max_length"], stride=self._stride(),
                              return_overflowing_tokens=True, padding=False, return_attention_mask=False)
        owner = np.asarray(enc["overflow_to_sample_mapping"], dtype=np.int64)
        return Encoded(ids=list(enc["input_ids"]), owner=owner, n_texts=len(texts))

    def _stride(self) -> int:
        return int(self.params["stride"] or self.params["max_length"] // 4)

    def _collate(self, windows: list[list[int]]) -> dict[str, torch.Tensor]:
        """Pad ``windows`` to the longest one (dynamic padding) on the tokenizer's padding side."""
        longest = max(len(w) for w in windows)
        ids = torch.full((len(windows), longest), self._pad_id(), dtype=torch.long)
        mask = torch.zeros((len(windows), longest), dtype=torch.long)
        left = getattr(self.tokenizer_, "padding_side", "right") == "left"
        for i, w in enumerate(windows):
            sl = slice(longest - len(w), longest) if left else slice(0, len(w))
            ids[i, sl] = torch.tensor(w, dtype=torch.long)
            mask[i, sl] = 1
        return {"input_ids": ids.to(self.device_), "attention_mask": mask.to(self.device_)}

    def _pad_id(self) -> int:
        pad = self.tokenizer_.pad_token_id
        if pad is None:
            raise LexcoderError(f"The tokenizer of {self.params['name']!r} has no pad token.")
        return int(pad)

    def _epoch_batches(self, lengths: np.ndarray, epoch: int) -> list[np.ndarray]:
        """Text indices of each training batch of ``epoch``: shuffled, grouped by length.

        Texts are shuffled, cut into mega-batches of 50 batches, sorted by length inside each, cut into
        batches, and the batches shuffled again: little padding, yet random batches. Depends only on
        ``seed`` and ``epoch``, so a resumed run sees the same batches.
        """
        bs = self.params["batch_size"]
        rng = np.random.default_rng([self.params["seed"], epoch])
        texts = self._epoch_texts(epoch)
        perm = texts[rng.permutation(len(texts))]
        batches = []
        for start in range(0, len(perm), 50 * bs):
            mega = perm[start:start + 50 * bs]
            mega = mega[np.argsort(-lengths[mega], kind="stable")]
            batches.extend(mega[i:i + bs] for i in range(0, len(mega), bs))
        return [batches[i] for i in rng.permutation(len(batches))]

    def _epoch_texts(self, epoch: int) -> np.ndarray:
        """Indices of the texts trained on in ``epoch``: all, or (``negative_ratio``) every text with a
        positive code plus a fresh seeded draw of texts without any."""
        if self.params["negative_ratio"] is None:
            return np.arange(len(self._has_positive))
        pos, neg = np.flatnonzero(self._has_positive), np.flatnonzero(~self._has_positive)
        drawn = np.random.default_rng([self.params["seed"], epoch, 1]).choice(neg, self._negatives_per_epoch(),
                                                                              replace=False)
        return np.sort(np.concatenate([pos, drawn]))

    def _negatives_per_epoch(self) -> int:
        n_pos = int(self._has_positive.sum())
        n_neg = len(self._has_positive) - n_pos
        ratio = self.params["negative_ratio"]
        return n_neg if ratio is None else min(n_neg, int(round(ratio * n_pos)))

    def _epoch_size(self) -> int:
        """Texts per epoch (the same in every epoch)."""
        return int(self._has_positive.sum()) + self._negatives_per_epoch()

    # -- forward pass --------------------------------------------------------------------------
    def _autocast(self, training: bool):
        if self.device_.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        if not training and self.params["inference_bf16"]:
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return torch.autocast("cpu", enabled=False)

    def _token_cap(self, *, training: bool) -> int:
        """Most tokens (windows x longest window) one forward pass may hold."""
        p = self.params
        return int(p["max_tokens_per_batch"] or (p["batch_size"] if training else p["eval_batch_size"])
                   * p["max_length"])

    def _forward(self, model: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor
                 ) -> torch.Tensor:
        """Float32 window logits ``(n_windows, n_labels)`` of one padded batch."""
        with self._autocast(model.training):
            return model(input_ids=input_ids, attention_mask=attention_mask).logits.float()

    def _window_logits(self, model: torch.nn.Module, windows: list[list[int]]) -> torch.Tensor:
        """Logits of ``windows`` for training, in forward passes of at most ``_token_cap`` tokens.

        Windows that do not fit one pass (a text longer than the cap allows) run in chunks under activation
        checkpointing: only the chunks' logits stay in memory, and each chunk's forward pass is recomputed
        (with the same dropout: the collated tensors are arguments, so their device's RNG is replayed) when
        the backward pass reaches it.
        """
        chunks = pack(np.ones(len(windows), dtype=np.int64), np.array([len(w) for w in windows]),
                      self._token_cap(training=True))
        if len(chunks) == 1:
            return self._forward(model, **self._collate(windows))
        from torch.utils.checkpoint import checkpoint
        parts = []
        for chunk in chunks:
            batch = self._collate(windows[chunk])
            parts.append(checkpoint(self._forward, model, batch["input_ids"], batch["attention_mask"],
                                    use_reentrant=False))
        return torch.cat(parts)

    def _text_logits(self, model: torch.nn.Module, enc: Encoded, texts: np.ndarray) -> torch.Tensor:
        """Pooled logits, shape ``(len(texts), n_labels)``, for the text indices ``texts`` of ``enc``."""
        wins = np.concatenate([self._windows[t] for t in texts])
        logits = self._window_logits(model, [enc.ids[w] for w in wins])
        if len(wins) == len(texts):
            return logits
        local = torch.as_tensor(np.repeat(np.arange(len(texts)), [len(self._windows[t]) for t in texts]),
                                device=logits.device)
        return pool_logits(logits, local, len(texts), self.params["pooling"])

    def _loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """BCE with per-label ``pos_weight_`` (focal when ``focal_gamma > 0``), mean over cells."""
        bce = F.binary_cross_entropy_with_logits(logits, y, pos_weight=self.pos_weight_, reduction="none")
        gamma = self.params["focal_gamma"]
        if gamma > 0:
            p = torch.sigmoid(logits)
            p_true = torch.where(y > 0.5, p, 1 - p)
            bce = bce * (1 - p_true).pow(gamma)
        return bce.mean()

    # -- training ---------------------------------------------------------------------------------
    def fit(self, texts, Y, val_texts=None, val_Y=None, *, label_names=None,
            coded=None) -> "TransformerClassifier":
        """Fine-tune on ``texts`` and ``Y`` ``(n, n_labels)``; early stopping on ``val_texts``/``val_Y``.

        With ``checkpoint_dir`` set, training is checkpointed there and resumed from its last checkpoint.
        ``coded`` (n,) bool: the texts ``negative_ratio`` keeps in every epoch (default: those with a
        positive code in ``Y``; per-label mode passes the texts with any label's code, so each binary model
        trains on the same texts as one multi-label model would).
        """
        texts, Y = check_training_data(texts, Y)
        coded = Y.sum(axis=1) > 0 if coded is None else np.asarray(coded, dtype=bool)
        if coded.shape != (len(texts),):
            raise ValueError(f"coded has shape {coded.shape}; expected ({len(texts)},)")
        self._check_params()
        with torch_threads(self.params["num_threads"]) as threads:
            self.threads_ = threads
            self._fit(texts, Y, val_texts, val_Y, label_names=label_names, coded=coded)
        return self

    def _fit(self, texts: list[str], Y: np.ndarray, val_texts, val_Y, *, label_names, coded: np.ndarray) -> None:
        self.label_names_ = list(label_names) if label_names is not None else [str(j) for j in range(Y.shape[1])]
        self._setup(Y.shape[1])
        enc = self._encode(texts)
        val = None
        if val_texts is not None and val_Y is not None and len(val_texts):
            val = ([str(t) for t in val_texts], np.asarray(val_Y))
        self._has_positive = coded
        prevalence = Y.sum(axis=0) / self._epoch_size()  # as the epochs see it (with negative_ratio)
        self.pos_weight_ = torch.tensor(np.clip((1 - prevalence) / prevalence, 1.0, self.params["pos_weight_cap"]),
                                        dtype=torch.float32, device=self.device_)
        self._train(enc, torch.as_tensor(Y, dtype=torch.float32), val, self._fingerprint(texts, Y, val, coded))

    def _check_params(self) -> None:
        p = self.params
        if p["pooling"] not in _POOLING:
            raise ConfigError(f"[model.params] pooling = {p['pooling']!r}; use one of {list(_POOLING)}.")
        if not 0 <= self._stride() <= p["max_length"] // 2:
            raise ConfigError(f"[model.params] stride = {p['stride']}: the overlap of windows must be between 0 "
                              f"and half of max_length ({p['max_length']}).")
        if p["batch_size"] < 1 or p["epochs"] < 1:
            raise ConfigError("[model.params] batch_size and epochs must be at least 1.")
        if p["negative_ratio"] is not None and not p["negative_ratio"] > 0:
            raise ConfigError(f"[model.params] negative_ratio = {p['negative_ratio']}: use a number > 0 (e.g. 3: "
                              "three texts without a positive code per text with one), or leave it out.")
        cap = p["max_tokens_per_batch"]
        if cap is not None and not cap >= p["max_length"]:
            raise ConfigError(f"[model.params] max_tokens_per_batch = {cap} is smaller than one window "
                              f"(max_length = {p['max_length']}): use at least max_length, or leave it out.")

    def _setup(self, num_labels: int) -> None:
        """Device, seed, tokenizer and a freshly initialised network."""
        self.device_ = pick_device(self.params["device"])
        torch.manual_seed(self.params["seed"])
        self.tokenizer_ = self._build_tokenizer()
        self.model_ = self._build_model(num_labels).to(self.device_)
        self._infer_model = None

    def _optimizer(self, total_steps: int):
        from transformers import get_linear_schedule_with_warmup
        p = self.params
        params = self._trainable_parameters()
        ids = {id(x) for x in params}
        heads = self._head_parameter_names()
        groups: dict[tuple[bool, bool], list] = {}
        for name, x in self.model_.named_parameters():
            if id(x) in ids:
                groups.setdefault((name in heads, x.ndim >= 2), []).append(x)
        spec = [{"params": xs, "lr": (p["head_lr"] or p["lr"]) if head else p["lr"],
                 "weight_decay": p["weight_decay"] if decay else 0.0}
                for (head, decay), xs in sorted(groups.items())]
        opt = torch.optim.AdamW(spec, lr=p["lr"])
        sched = get_linear_schedule_with_warmup(opt, int(p["warmup_ratio"] * total_steps), total_steps)
        return opt, sched

    def _total_steps(self, n_texts: int) -> int:
        per_epoch = -(-n_texts // self.params["batch_size"])
        total = per_epoch * self.params["epochs"]
        return min(total, self.params["max_steps"]) if self.params["max_steps"] else total

    def _train(self, enc: Encoded, Y: torch.Tensor, val, fingerprint: str) -> None:
        total = self._total_steps(self._epoch_size())
        opt, sched = self._optimizer(total)
        state, best = TrainState(), None
        ckpt = self._latest_checkpoint(fingerprint)
        if ckpt is not None:
            state, best = self._restore(ckpt, opt, sched)
        if not state.finished:
            best = self._loop(enc, Y, val, opt, sched, state, best, total, fingerprint)
        if best is not None:
            self._set_trainable_state(best)
        self.history_ = state.history
        self.model_.eval()

    def _loop(self, enc, Y, val, opt, sched, state: TrainState, best, total: int, fingerprint: str):
        p = self.params
        self._windows = enc.windows_of()
        self._window_lengths = np.array([len(w) for w in enc.ids])
        lengths = enc.text_lengths()
        per_epoch = -(-self._epoch_size() // p["batch_size"])
        ckpt_every, eval_every = p["checkpoint_steps"], p["eval_steps"]
        # the loss stays on the device until an evaluation: no per-step GPU→CPU sync, so the CPU can
        # queue the next step while the GPU still computes this one
        t0, seen, loss_sum = time.perf_counter(), 0, torch.zeros((), device=self.device_)
        for epoch, b, batch in track(self._steps(lengths, state), description="Fine-tuning",
                                     total=total - state.global_step):
            loss_sum += self._train_step(enc, Y, batch, opt, sched)
            seen += len(batch)
            state.epoch, state.batch_in_epoch, state.global_step = epoch, b + 1, state.global_step + 1
            end_of_epoch = b + 1 == per_epoch or state.global_step == total
            if end_of_epoch or (eval_every and state.global_step % eval_every == 0):
                best = self._evaluate(val, state, best, float(loss_sum) / max(seen, 1),
                                      seen / (time.perf_counter() - t0))
                loss_sum.zero_()
            stop = state.global_step >= total or bool(p["patience"] and state.bad_evals >= p["patience"])
            state.finished = stop
            if end_of_epoch or stop or state.global_step % ckpt_every == 0:
                self._checkpoint(opt, sched, state, best, fingerprint)
            self._after_step(state.global_step)
            if stop:
                break
        state.finished = True
        return best

    def _steps(self, lengths: np.ndarray, state: TrainState) -> Iterator[tuple[int, int, np.ndarray]]:
        """(epoch, batch index, text indices) from where ``state`` stands."""
        skip = state.batch_in_epoch
        epoch = state.epoch
        batches = self._epoch_batches(lengths, epoch)
        if skip >= len(batches):
            epoch, skip = epoch + 1, 0
        for e in range(epoch, self.params["epochs"]):
            batches = self._epoch_batches(lengths, e)
            for b in range(skip if e == epoch else 0, len(batches)):
                yield e, b, batches[b]

    def _train_step(self, enc: Encoded, Y: torch.Tensor, batch: np.ndarray, opt, sched) -> torch.Tensor:
        """One optimizer step; returns the batch's summed loss as a 0-d tensor on the device."""
        self.model_.train()
        loss = self._backward(enc, Y, batch)
        torch.nn.utils.clip_grad_norm_(self._trainable_parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        return loss * len(batch)

    def _backward(self, enc: Encoded, Y: torch.Tensor, batch: np.ndarray) -> torch.Tensor:
        """Accumulate the gradient of the batch's loss (the mean over its texts and labels); returns the loss.

        The batch runs in micro-batches of whole texts that fit one forward pass (see :meth:`_micro_batches`);
        each micro-batch's mean loss is weighted by its share of the batch's texts, so the summed gradient is
        the whole batch's (up to float rounding).
        """
        total = torch.zeros((), device=self.device_)
        for part in self._micro_batches(batch):
            loss = self._loss(self._text_logits(self.model_, enc, part), Y[torch.as_tensor(part)].to(self.device_))
            if len(part) < len(batch):
                loss = loss * (len(part) / len(batch))
            loss.backward()
            total += loss.detach().float()
        return total

    def _micro_batches(self, batch: np.ndarray) -> list[np.ndarray]:
        """``batch`` cut into consecutive groups of texts whose windows fit one forward pass.

        A text whose windows alone exceed the cap is a group of its own (its windows are then chunked by
        :meth:`_window_logits`). Texts in a batch have similar lengths, so in-order packing pads little.
        """
        counts = np.array([len(self._windows[t]) for t in batch])
        longest = np.array([self._window_lengths[self._windows[t]].max() for t in batch])
        return [batch[part] for part in pack(counts, longest, self._token_cap(training=True))]

    def _after_step(self, step: int) -> None:
        """Called after every optimizer step (and checkpoint); a no-op hook (tests interrupt here)."""

    def _evaluate(self, val, state: TrainState, best, train_loss: float, speed: float):
        """Validation macro-F1 (F1-optimal thresholds); keep the best weights; log one line."""
        entry = {"epoch": state.epoch, "step": state.global_step, "train_loss": round(train_loss, 5),
                 "train_examples_per_s": round(speed, 2)}
        if val is None:
            state.history.append(entry)
            log.info("epoch %d step %d: train loss %.4f (%.1f texts/s; no validation texts)",
                     state.epoch + 1, state.global_step, train_loss, speed)
            return self._trainable_state()
        P = self._predict(val[0], self.model_)
        score = macro_f1_at_best_thresholds(val[1], P)
        entry["val_macro_f1"] = round(score, 5)
        state.history.append(entry)
        improved = score > state.best_score
        if improved:
            state.best_score, state.best_step, state.bad_evals = score, state.global_step, 0
            best = self._trainable_state()
        else:
            state.bad_evals += 1
        log.info("epoch %d step %d: train loss %.4f, val macro-F1 %.4f (best %.4f at step %d), %.1f texts/s",
                 state.epoch + 1, state.global_step, train_loss, score, state.best_score, state.best_step, speed)
        return best

    def _trainable_state(self) -> dict[str, torch.Tensor]:
        """Copies of the trainable parameters, by name."""
        return {n: x.detach().to("cpu", copy=True).contiguous()
                for n, x in self.model_.named_parameters() if x.requires_grad}

    def _set_trainable_state(self, weights: dict[str, torch.Tensor]) -> None:
        with torch.no_grad():
            for n, x in self.model_.named_parameters():
                if n in weights:
                    x.copy_(weights[n].to(x.device))
        self._infer_model = None

    # -- checkpoints ------------------------------------------------------------------------------
    def _fingerprint(self, texts: list[str], Y: np.ndarray, val, coded: np.ndarray) -> str:
        """Identifies the training problem, so a checkpoint is only resumed for the same one."""
        settings = {k: v for k, v in self.params.items() if k not in _MEMORY_ONLY}
        h = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
        for t in texts:
            h.update(t.encode("utf-8", "surrogatepass") + b"\0")
        h.update(np.ascontiguousarray(Y).tobytes())
        h.update(np.packbits(coded).tobytes())
        if val is not None:
            h.update(str(len(val[0])).encode() + np.ascontiguousarray(val[1]).tobytes())
        return h.hexdigest()[:20]

    def _latest_checkpoint(self, fingerprint: str) -> Path | None:
        if self.checkpoint_dir is None:
            return None
        pointer = Path(self.checkpoint_dir) / _LATEST
        if not pointer.is_file():
            return None
        info = json.loads(pointer.read_text(encoding="utf-8"))
        if info.get("fingerprint") != fingerprint:
            log.warning("Ignoring the checkpoint in %s: it belongs to other data or settings.", self.checkpoint_dir)
            return None
        path = Path(self.checkpoint_dir) / info["path"]
        return path if path.is_dir() else None

    def _checkpoint(self, opt, sched, state: TrainState, best, fingerprint: str) -> None:
        """Write a complete checkpoint, then atomically point ``latest.json`` at it.

        The files are written into a temporary folder beside the checkpoint, flushed to disk and renamed
        (:func:`~lexcoder.io.atomic_dir`); ``latest.json`` is replaced atomically only after that, so a
        crash (kill -9, power loss) at any moment leaves ``latest.json`` pointing at a complete checkpoint.
        """
        if self.checkpoint_dir is None:
            return
        root = Path(self.checkpoint_dir)
        name = f"step-{state.global_step:07d}"
        with atomic_dir(root / name) as tmp:
            save_file(self._trainable_state(), tmp / "trainable.safetensors")
            if best is not None:
                save_file(best, tmp / "best.safetensors")
            tensors, groups = flatten_optimizer(opt.state_dict())
            tensors.update(rng_state())
            save_file(tensors, tmp / "optimizer_rng.safetensors")
            write_json({"train": state.__dict__, "param_groups": groups, "scheduler": sched.state_dict(),
                        "threads": torch.get_num_threads()}, tmp / "state.json")
        write_json({"path": name, "fingerprint": fingerprint}, root / _LATEST)
        for old in [*root.glob("step-*"), *root.glob(".step-*")]:  # older ones; debris of a killed write
            if old.name != name:
                shutil.rmtree(old, ignore_errors=True)
        log.debug("checkpoint %s", root / name)

    def _restore(self, path: Path, opt, sched) -> tuple[TrainState, dict[str, torch.Tensor] | None]:
        info = json.loads((path / "state.json").read_text(encoding="utf-8"))
        state = TrainState(**info["train"])
        self._set_trainable_state(load_file(path / "trainable.safetensors"))
        tensors = load_file(path / "optimizer_rng.safetensors")
        opt.load_state_dict(unflatten_optimizer(tensors, info["param_groups"]))
        sched.load_state_dict(info["scheduler"])
        set_rng_state(tensors)
        if info.get("threads") and not self.params["num_threads"]:
            # the same reduction order as before the interruption (fit() restores the caller's count)
            self.threads_ = int(info["threads"])
            torch.set_num_threads(self.threads_)
        best = load_file(path / "best.safetensors") if (path / "best.safetensors").is_file() else None
        log.info("Resuming from checkpoint %s (step %d%s).", path, state.global_step,
                 ", already finished" if state.finished else "")
        return state, best

    # -- prediction -------------------------------------------------------------------------------
    def predict_proba(self, texts) -> np.ndarray:
        """Probabilities ``(len(texts), n_labels)``: windows sorted by length, pooled per text."""
        self._check_fitted()
        with torch_threads(self.params["num_threads"]):
            return self._predict([str(t) for t in texts], self._inference_model())

    def _predict(self, texts: list[str], model: torch.nn.Module) -> np.ndarray:
        n_labels = len(self.label_names_)
        if not texts:
            return np.zeros((0, n_labels))
        model.eval()
        enc = self._encode(texts)
        lengths = np.array([len(w) for w in enc.ids])
        order = np.argsort(lengths, kind="stable")
        logits = np.empty((len(enc.ids), n_labels), dtype=np.float32)
        passes = pack(np.ones(len(order), dtype=np.int64), lengths[order], self._token_cap(training=False),
                      max_count=self.params["eval_batch_size"])
        with torch.inference_mode():
            for part in passes:
                idx = order[part]
                logits[idx] = self._forward(model, **self._collate([enc.ids[i] for i in idx])).cpu().numpy()
        return pool_probabilities(logits, enc.owner, len(texts), self.params["pooling"])

    def _inference_model(self) -> torch.nn.Module:
        """The network in eval mode, dynamically int8-quantised on CPU when ``quantize_int8``."""
        if getattr(self, "_infer_model", None) is None:
            self.model_.eval()
            model = self.model_
            if self.params["quantize_int8"] and self.device_.type == "cpu":
                model = quantize_int8(model)
            self._infer_model = model
        return self._infer_model

    # -- persistence ------------------------------------------------------------------------------
    def _save(self, directory: Path) -> None:
        self._save_weights(directory)
        self.tokenizer_.save_pretrained(directory / "tokenizer")
        write_json({"history": getattr(self, "history_", []), "threads": getattr(self, "threads_", None)},
                   directory / "training_history.json")

    @classmethod
    def _load(cls, directory: Path, meta: dict[str, Any]) -> "TransformerClassifier":
        from transformers import AutoTokenizer
        model = cls(**meta["params"])
        model.device_ = load_device(model.params["device"])
        model.tokenizer_ = AutoTokenizer.from_pretrained(directory / "tokenizer", local_files_only=True)
        model.model_ = cls._load_weights(directory, meta, model.device_).to(model.device_).eval()
        model._infer_model = None
        hist = directory / "training_history.json"
        info = json.loads(hist.read_text(encoding="utf-8")) if hist.is_file() else {}
        model.history_ = info.get("history", [])
        if info.get("threads"):
            model.threads_ = int(info["threads"])
        return model


# -- helpers (plain functions over tensors/arrays) ---------------------------------------------------
def pool_logits(logits: torch.Tensor, owner: torch.Tensor, n_texts: int, pooling: str) -> torch.Tensor:
    """Pool window logits ``(n_windows, k)`` into text logits ``(n_texts, k)`` (differentiable).

    ``"max"`` takes the largest logit (= the largest probability); ``"mean"`` averages probabilities and
    returns their logit.
    """
    index = owner[:, None].expand_as(logits)
    if pooling == "max":
        return logits.new_zeros((n_texts, logits.shape[1])).scatter_reduce(0, index, logits, "amax",
                                                                           include_self=False)
    probs = torch.sigmoid(logits).new_zeros((n_texts, logits.shape[1])).scatter_reduce(
        0, index, torch.sigmoid(logits), "mean", include_self=False)
    return torch.logit(probs, eps=1e-6)


def pool_probabilities(logits: np.ndarray, owner: np.ndarray, n_texts: int, pooling: str) -> np.ndarray:
    """Text probabilities ``(n_texts, k)``, float64, from window logits ``(n_windows, k)``."""
    z = logits.astype(np.float64)
    if len(z) == n_texts and np.array_equal(owner, np.arange(n_texts)):
        return sigmoid(z)
    if pooling == "max":
        out = np.full((n_texts, z.shape[1]), -np.inf)
        np.maximum.at(out, owner, z)
        return sigmoid(out)
    out = np.zeros((n_texts, z.shape[1]))
    np.add.at(out, owner, sigmoid(z))
    return out / np.bincount(owner, minlength=n_texts)[:, None]


def macro_f1_at_best_thresholds(Y: np.ndarray, P: np.ndarray) -> float:
    """Mean over labels with a 1 in ``Y`` of the highest F1 along the label's threshold curve (0 if none)."""
    scores = [f1_curve(Y[:, j], P[:, j])[1].max() for j in range(Y.shape[1]) if Y[:, j].any()]
    return float(np.mean(scores)) if scores else 0.0


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


@contextlib.contextmanager
def torch_threads(num_threads: int | None) -> Iterator[int]:
    """Run the block with ``num_threads`` torch CPU threads (0/None: :func:`default_threads`); yields the
    count and restores the caller's count afterwards, so lexcoder's setting never leaks into the process."""
    previous = torch.get_num_threads()
    n = int(num_threads or default_threads())
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
    env = os.environ.get(_THREADS_ENV, "").strip()
    if env:
        if not env.isdigit() or int(env) < 1:
            raise ConfigError(f"${_THREADS_ENV} = {env!r}: use a whole number of threads >= 1, or unset it.")
        return int(env)
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1  # pragma: no cover - macOS and Windows have no CPU affinity call


def pack(counts: np.ndarray, longest: np.ndarray, cap: int, *, max_count: int | None = None) -> list[slice]:
    """Cut items into consecutive groups that fit one forward pass.

    Parameters
    ----------
    counts : (n,) windows of each item (1 for a window)
    longest : (n,) tokens of each item's longest window
    cap : most padded tokens in a group: ``sum(counts) * max(longest)``
    max_count : most windows in a group (None: no limit)

    Returns
    -------
    Slices of ``range(n)``, in order; an item that alone exceeds the limits is a group of its own.
    """
    groups, start, n_windows, top = [], 0, 0, 0
    for i, (count, length) in enumerate(zip(counts, longest)):
        grown, wider = n_windows + int(count), max(top, int(length))
        if i > start and (grown * wider > cap or (max_count is not None and grown > max_count)):
            groups.append(slice(start, i))
            grown, wider, start = int(count), int(length), i
        n_windows, top = grown, wider
    groups.append(slice(start, len(counts)))
    return groups


def declared_params(klass: type) -> set[str]:
    """Keyword parameters named by the ``__init__`` of ``klass`` or of any of its bases."""
    import inspect
    names: set[str] = set()
    for k in klass.__mro__:
        if "__init__" in vars(k):
            names |= {p.name for p in inspect.signature(k.__init__).parameters.values()
                      if p.kind == p.KEYWORD_ONLY}
    return names


def pick_device(device: str | None) -> torch.device:
    """``"cpu"``, ``"cuda[:i]"``, or CUDA when available for ``"auto"``/None (for training)."""
    if device in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"[model.params] device = {device!r} but no CUDA GPU is available; use \"cpu\".")
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
