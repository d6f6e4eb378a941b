"""The shared torch core of the fine-tuned families (encoders and decoder LLMs).

:class:`TransformerClassifier` holds the settings and the training loop the families share: AdamW with
linear warm-up over length-grouped batches of token windows, the loss, evaluation on the validation texts
with early stopping on macro-F1, checkpoints with exact resume, and a fast inference path.

0/1 labels and categorical variables share one body: the head has one logit per 0/1 label and one per
class of each categorical variable (``n_labels + sum k_j``, labels first: :mod:`~lexcoder.models.outputs`);
the labels' block takes sigmoids and each variable's block a softmax; the loss is the mean of the labels'
binary cross-entropy and each variable's class-weighted cross-entropy
(:func:`~lexcoder.models.losses.grouped_loss` says why), and early stopping watches the mean of the labels'
macro-F1 (at their best thresholds) and each variable's macro-F1. ``per_variable = true`` (or an encoder's
``per_label``) trains separate networks instead, one per group of outputs, behind the same interface.

Subclasses only say how to build and save the network (``_build_model``, ``_build_tokenizer``,
``_save_weights``, ``_load_weights``, ``_trainable_parameters``). The parts live beside it:

- :mod:`~lexcoder.models.windows`: texts as overlapping token windows, padding, batches, pooling;
- :mod:`~lexcoder.models.losses`: binary cross-entropy with capped ``pos_weight``, focal loss, class-weighted
  cross-entropy, their mean over a shared head's groups;
- :mod:`~lexcoder.models.checkpoints`: atomic checkpoints and their resume;
- :mod:`~lexcoder.models.torch_runtime`: devices, CPU threads, int8 inference.

No forward pass holds more than ``max_tokens_per_batch`` tokens (windows x longest window, padding
included), so a batch of long judgments cannot exhaust the GPU's memory: a training batch is cut into
micro-batches of whole texts whose gradients add up to the batch's, and a text with more windows than one
pass may hold runs its windows in checkpointed chunks (each chunk's activations are recomputed in the
backward pass, one chunk at a time).
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
import torch
from pydantic import Field
from sklearn.base import clone

from ..errors import LexcoderError
from ..io import write_json
from ..progress import track
from ..thresholds import f1_curve
from .base import META_FILE, TextClassifier, model_family
from . import parallel
from .checkpoints import Checkpoint, TrainState, latest_checkpoint, read_checkpoint, write_checkpoint
from .inputs import encode_inputs
from .losses import grouped_loss, loss_weights
from .outputs import MULTIOUTPUT, LinkGroup, categorical_names, output_groups
from .pretrained import resolve_model_path
from .torch_runtime import (adamw, bf16_decision, bf16_in_use, bf16_training_decision, load_device, pick_device,
                            quantize_int8, torch_threads)
from .windows import Encoded, collate, length_grouped_batches, pack, pool_logits, pool_probabilities

log = logging.getLogger(__name__)

# settings that change how much memory a step takes, not what it computes (beyond float rounding): a run
# that ran out of memory can be resumed from its checkpoint with a smaller cap
_MEMORY_ONLY = ("max_tokens_per_batch",)
# settings that only change how a fitted network predicts: set_params passes them on to separate networks
_INFERENCE = ("quantize_int8", "inference_bf16", "eval_batch_size", "max_tokens_per_batch", "num_threads",
              "device")


@model_family
class TransformerClassifier(TextClassifier):
    """Fine-tune a pretrained transformer as a multi-label classifier (one sigmoid per label).

    The families (:class:`~lexcoder.models.encoder.EncoderClassifier`,
    :class:`~lexcoder.models.llm.LLMClassifier`) subclass it and say how to build and save the network.
    """

    kind: ClassVar[str] = "transformer"
    # not a setting: set by the pipeline (checkpoint there and resume from it); clone() leaves it unset
    checkpoint_dir: ClassVar[Path | None] = None

    name: Annotated[str, Field(description=(
        'pretrained model: an alias ("minilm"), a local directory or a cached hub id'))] = "minilm"
    max_length: Annotated[int, Field(ge=8, description=(
        "tokens per window; longer texts are cut into overlapping windows"))] = 256
    stride: Annotated[int | None, Field(ge=0, description=(
        "tokens shared by consecutive windows of a long text, at most half of max_length (0 or unset: a "
        "quarter of max_length)"))] = None
    pooling: Annotated[Literal["max", "mean"], Field(description=(
        'how window probabilities become the text\'s: "max" (the most confident window) or "mean"'))] = "max"
    batch_size: Annotated[int, Field(ge=1, description="texts per training batch")] = 16
    eval_batch_size: Annotated[int, Field(ge=1, description="windows per prediction batch")] = 64
    max_tokens_per_batch: Annotated[int | None, Field(ge=1, description=(
        "most tokens (windows x longest window, padding included) in one forward pass, training or "
        "prediction; at least max_length. Lower it if long texts exhaust the GPU's memory: the update stays "
        "that of the whole batch (unset: batch_size x max_length)"))] = None
    epochs: Annotated[int, Field(ge=1, description=(
        "passes over the training texts (early stopping may end sooner)"))] = 3
    max_steps: Annotated[int | None, Field(ge=0, description=(
        "stop after this many optimizer steps (0 or unset: no limit)"))] = None
    lr: Annotated[float, Field(gt=0, description=(
        "peak learning rate of AdamW (linear warm-up, then linear decay to 0)"))] = 5e-5
    head_lr: Annotated[float | None, Field(ge=0, description=(
        "learning rate of the classification head (0 or unset: lr); a larger one helps rare labels"))] = None
    weight_decay: Annotated[float, Field(ge=0, description=(
        "AdamW weight decay (not applied to biases and norms)"))] = 0.01
    warmup_ratio: Annotated[float, Field(ge=0, le=1, description=(
        "share of the training steps spent warming up"))] = 0.1
    pos_weight_cap: Annotated[float, Field(ge=1, description=(
        "per-label positive weight = negatives / positives, capped at this (1: unweighted)"))] = 10.0
    focal_gamma: Annotated[float, Field(ge=0, description=(
        "0: plain binary cross-entropy; > 0: focal loss with this gamma"))] = 0.0
    negative_ratio: Annotated[float | None, Field(gt=0, description=(
        "each epoch trains on every text with a positive code plus this many times as many texts without "
        "any, drawn afresh every epoch (unset: every text every epoch); probabilities are then biased "
        "upwards, which the validation-tuned thresholds absorb"))] = None
    eval_steps: Annotated[int | None, Field(ge=0, description=(
        "also evaluate every this many steps (0 or unset: once per epoch)"))] = None
    patience: Annotated[int | None, Field(ge=0, description=(
        "stop after this many evaluations without a better validation macro-F1 (0 or unset: never)"))] = 2
    checkpoint_steps: Annotated[int, Field(ge=1, description=(
        "in a run, checkpoint every this many optimizer steps (and after every epoch)"))] = 200
    quantize_int8: Annotated[bool, Field(description=(
        "CPU prediction with dynamic int8 quantisation of the linear layers (faster; check agreement)"))] = False
    inference_bf16: Annotated[bool | Literal["auto"], Field(description=(
        'CPU prediction under bfloat16 autocast: "auto" uses it on CPUs with native bf16 units (Intel AMX) '
        "when, after training, the validation macro-F1 under bf16 is within 0.005 of float32's (the decision "
        "is saved with the model); true / false force bf16 / float32"))] = "auto"
    train_bf16: Annotated[bool | Literal["auto"], Field(description=(
        "CPU training under bfloat16 autocast (weights, gradients and optimizer state stay float32): "
        '"auto" uses it on CPUs with native bf16 units (Intel AMX), true forces it, false trains in float32; '
        "the choice is saved with the model (on a GPU, training always runs under bf16 autocast)"))] = False
    num_threads: Annotated[int | None, Field(ge=0, description=(
        "torch CPU threads while fitting/predicting (0 or unset: $LEXCODER_NUM_THREADS, else the cores this "
        "process may use)"))] = None
    device: Annotated[str | None, Field(description=(
        '"cpu", "cuda", "cuda:1", or "auto"/unset: CUDA when available'))] = None
    seed: Annotated[int, Field(ge=0, lt=2**32, description=(
        "seeds weight initialisation, batch order and dropout"))] = 0
    per_variable: Annotated[bool, Field(description=(
        "with categorical variables: train one network for the 0/1 labels and one per categorical variable "
        "(as many fine-tunes as groups) instead of one network with a head for each"))] = False

    def set_params(self, **params: Any) -> "TransformerClassifier":
        """scikit-learn's ``set_params``; on a fitted model, inference settings (``quantize_int8``,
        ``inference_bf16``, ``eval_batch_size`` ...) take effect at the next prediction."""
        super().set_params(**params)
        self._infer_model = None  # rebuilt (e.g. int8-quantised or not) when next needed
        inference = {k: v for k, v in params.items() if k in _INFERENCE}
        for part in self._parts() if inference else []:
            part.set_params(**inference)
        return self

    def _setting_conflicts(self) -> list[str]:
        problems = []
        if self.stride is not None and self.stride > self.max_length // 2:
            problems.append(f"stride = {self.stride}: the overlap of windows must be at most half of "
                            f"max_length ({self.max_length})")
        cap = self.max_tokens_per_batch
        if cap is not None and cap < self.max_length:
            problems.append(f"max_tokens_per_batch = {cap} is smaller than one window (max_length = "
                            f"{self.max_length}): use at least max_length, or leave it unset")
        return problems

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
        return resolve_model_path(self.name)

    # -- tokenisation and batching ----------------------------------------------------------------
    def _encode(self, texts: Sequence[str]) -> Encoded:
        # texts with context (neighbours, position, metadata) become one window centred on the text
        return encode_inputs(self.tokenizer_, texts, max_length=self.max_length, stride=self._stride())

    def _stride(self) -> int:
        return int(self.stride or self.max_length // 4)

    def _collate(self, windows: list[list[int]]) -> dict[str, torch.Tensor]:
        left = getattr(self.tokenizer_, "padding_side", "right") == "left"
        return collate(windows, pad_id=self._pad_id(), left=left, device=self.device_)

    def _pad_id(self) -> int:
        pad = self.tokenizer_.pad_token_id
        if pad is None:
            raise LexcoderError(f"The tokenizer of {self.name!r} has no pad token.")
        return int(pad)

    def _epoch_batches(self, lengths: np.ndarray, epoch: int) -> list[np.ndarray]:
        """Text indices of each training batch of ``epoch``, grouped by length; depends only on ``seed``
        and ``epoch``, so a resumed run sees the same batches."""
        rng = np.random.default_rng([self.seed, epoch])
        return length_grouped_batches(self._epoch_texts(epoch), lengths, self.batch_size, rng)

    def _epoch_texts(self, epoch: int) -> np.ndarray:
        """Indices of the texts trained on in ``epoch``: all, or (``negative_ratio``) every text with a
        positive code plus a fresh seeded draw of texts without any."""
        if self.negative_ratio is None:
            return np.arange(len(self._has_positive))
        pos, neg = np.flatnonzero(self._has_positive), np.flatnonzero(~self._has_positive)
        drawn = np.random.default_rng([self.seed, epoch, 1]).choice(neg, self._negatives_per_epoch(),
                                                                              replace=False)
        return np.sort(np.concatenate([pos, drawn]))

    def _negatives_per_epoch(self) -> int:
        n_pos = int(self._has_positive.sum())
        n_neg = len(self._has_positive) - n_pos
        ratio = self.negative_ratio
        return n_neg if ratio is None else min(n_neg, int(round(ratio * n_pos)))

    def _epoch_size(self) -> int:
        """Texts per epoch (the same in every epoch)."""
        return int(self._has_positive.sum()) + self._negatives_per_epoch()

    # -- forward pass --------------------------------------------------------------------------
    def _autocast(self, training: bool):
        if self.device_.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        if self._bf16_training() if training else self._bf16_inference():
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return torch.autocast("cpu", enabled=False)

    def _bf16_training(self) -> bool:
        """Whether training steps run under CPU bf16 autocast: the decision :meth:`_fit` recorded
        (:func:`~.torch_runtime.bf16_training_decision`)."""
        return (getattr(self, "training_precision_", None) or {}).get("precision") == "bf16"

    def _bf16_inference(self) -> bool:
        """Whether prediction runs under bf16 autocast (:func:`~.torch_runtime.bf16_in_use`); during the
        validation check, what the check asks for; during training (no decision yet), float32."""
        forced = getattr(self, "_bf16_check", None)
        if forced is not None:
            return forced
        auto_int8 = self.inference_bf16 == "auto" and self.quantize_int8  # int8 was asked for: no bf16 on top
        return not auto_int8 and bf16_in_use(self.inference_bf16, self.device_,
                                             getattr(self, "inference_precision_", None))

    def _choose_inference_precision(self, val) -> None:
        """Record the bf16-or-float32 decision for CPU prediction (:func:`~.torch_runtime.bf16_decision`),
        checked on the validation texts with the trained weights."""
        def predict(bf16: bool) -> np.ndarray:
            self._bf16_check = bf16
            try:
                return self._predict(val[0], self.model_)
            finally:
                self._bf16_check = None

        def score(P: np.ndarray) -> float:
            return float(np.mean(validation_scores(val[1], P, self._link_groups())))

        self.inference_precision_ = bf16_decision(self.inference_bf16, self.device_,
                                                  None if val is None else predict, score)

    def _token_cap(self, *, training: bool) -> int:
        """Most tokens (windows x longest window) one forward pass may hold."""
        return int(self.max_tokens_per_batch or (self.batch_size if training else self.eval_batch_size)
                   * self.max_length)

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
        groups = self._link_groups()
        if len(groups) == 1 or self.pooling == "max":  # the largest logit per column, whatever the link
            return pool_logits(logits, local, len(texts), self.pooling, softmax=groups[0][1])
        return torch.cat([pool_logits(logits[:, cols], local, len(texts), self.pooling, softmax=soft)
                          for cols, soft in groups], dim=1)

    def _loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return grouped_loss(logits, y, self._link_groups(), self.loss_weights_, focal_gamma=self.focal_gamma)

    # -- training ---------------------------------------------------------------------------------
    def fit(self, texts, y, val_texts=None, val_y=None, **kwargs: Any) -> "TransformerClassifier":
        """:meth:`TextClassifier.fit <lexcoder.models.base.TextClassifier.fit>`; under ``accelerate launch``
        every process joins the fit, data-parallel (:mod:`~lexcoder.models.parallel`)."""
        return parallel.replicated_fit(self, super().fit, texts, y, val_texts, val_y, **kwargs)

    def _fit(self, texts: list[str], Y: np.ndarray, val_texts, val_Y, *, coded=None) -> None:
        """Fine-tune on ``texts`` and ``Y`` ``(n, width)``; early stopping on ``val_texts``/``val_Y``.

        One network for every output, or (multi-output target with ``per_variable``/``per_label``) one per group
        of outputs (:meth:`_fit_groups`).

        With ``checkpoint_dir`` set, training is checkpointed there and resumed from its last checkpoint.
        ``coded`` (n,) bool: the texts ``negative_ratio`` keeps in every epoch (default: those with a
        positive code in ``Y``; per-label mode passes the texts with any label's code, so each binary model
        trains on the same texts as one multi-label model would).
        """
        groups = self._network_groups()
        self.group_models_ = None
        if groups is not None:
            self._fit_groups(texts, Y, val_texts, val_Y, groups)
            return
        if self.negative_ratio is not None and any(soft for _, soft in self._link_groups()):
            raise LexcoderError(
                "negative_ratio applies to 0/1 labels (texts without any code); a categorical variable gives every "
                "text a class. Leave negative_ratio unset" + (", or set per_variable = true (the 0/1 labels' own "
                "network then uses it)." if self.target_type_ == MULTIOUTPUT else "."))
        coded = Y.sum(axis=1) > 0 if coded is None else np.asarray(coded, dtype=bool)
        if coded.shape != (len(texts),):
            raise ValueError(f"coded has shape {coded.shape}; expected ({len(texts)},)")
        with torch_threads(self.num_threads) as threads:
            self.threads_ = threads
            self._setup(Y.shape[1])
            self.training_precision_ = bf16_training_decision(self.train_bf16, self.device_)
            enc = self._encode(texts)
            val = (val_texts, val_Y) if val_texts is not None and len(val_texts) else None
            self._has_positive = coded
            # labels: their positives' share as the epochs see it (with negative_ratio, fewer negatives per
            # epoch); variables: class weights (pos_weight_cap caps the largest ratio)
            self.loss_weights_ = loss_weights(Y, self._link_groups(), cap=self.pos_weight_cap,
                                              texts_per_epoch=self._epoch_size(), device=self.device_)
            self._train(enc, torch.as_tensor(Y, dtype=torch.float32), val, self._fingerprint(texts, Y, val, coded))
            self._choose_inference_precision(val)

    # -- separate networks (per_variable; an encoder's per_label) ------------------------------------
    def _network_groups(self) -> list[list[int]] | None:
        """The outputs of each separate network, or None for one network (the only choice unless the target
        is multi-output)."""
        if self.target_type_ != MULTIOUTPUT:
            return None
        # an encoder's per_label: every output its own network (a label alone, a variable alone)
        return output_groups(self.outputs_, per_output=bool(getattr(self, "per_label", False)),
                             per_variable=self.per_variable)

    def _single_network_settings(self) -> dict[str, Any]:
        """Settings of a network that is a part of this model (its own parts: none)."""
        return {"per_variable": False}

    def _part_model(self, subdir: str, **settings: Any) -> "TransformerClassifier":
        """An unfitted network with this model's settings, checkpointing in ``checkpoint_dir/subdir``."""
        part = clone(self).set_params(**self._single_network_settings(), **settings)
        if self.checkpoint_dir is not None:
            part.checkpoint_dir = Path(self.checkpoint_dir) / subdir
        return part

    def _parts(self) -> list["TransformerClassifier"]:
        """The separate networks of a fitted model (none when one network holds every output)."""
        return list(getattr(self, "group_models_", None) or [])

    def _fit_groups(self, texts, Y: np.ndarray, val_texts, val_Y, groups: list[list[int]]) -> None:
        """One network per group of outputs, each fitted on its outputs alone (a multi-output target)."""
        y, val_y = self._target_of(Y)[0], None if val_Y is None else self._target_of(val_Y)[0]
        labels = [o.columns.start for o in self.outputs_ if not o.categorical]
        coded = Y[:, labels].any(axis=1)  # with negative_ratio, every label network keeps every coded text
        self.group_models_ = []
        for g, members in enumerate(groups):
            names = [self.outputs_[j].name for j in members]
            variables = categorical_names([self.outputs_[j] for j in members])
            log.info("Training the network for %s (%d of %d)", ", ".join(names), g + 1, len(groups))
            # a variable's network: every text has a class, so there are no uncoded texts to subsample
            part = self._part_model(f"group{g}", **({"negative_ratio": None} if variables else {}))
            part.fit(texts, y[names], val_texts, None if val_y is None else val_y[names], categorical=variables,
                     **({} if variables else {"coded": coded}))
            self.group_models_.append(part)
        self.history_ = [m.history_ for m in self.group_models_]

    def _assemble(self, texts: list[str]) -> np.ndarray:
        """The family's matrix from the separate networks' matrices (columns matched by output name)."""
        columns = {o.name: o.columns for o in self.outputs_}
        P = np.empty((len(texts), self._n_columns()))
        for part in self._parts():
            P_part = part._predict_proba(texts)
            for o in part.outputs_:
                P[:, columns[o.name]] = P_part[:, o.columns]
        return P

    def _setup(self, num_labels: int) -> None:
        """Device, seed, tokenizer and a freshly initialised network."""
        self.device_ = parallel.training_device(self.device) or pick_device(self.device)
        torch.manual_seed(self.seed)
        self.tokenizer_ = self._build_tokenizer()
        self.model_ = self._build_model(num_labels).to(self.device_)
        self._infer_model = None
        self.inference_precision_ = None  # decided again after this training (refits evaluate in float32)

    def _optimizer(self, total_steps: int):
        from transformers import get_linear_schedule_with_warmup
        params = self._trainable_parameters()
        ids = {id(x) for x in params}
        heads = self._head_parameter_names()
        groups: dict[tuple[bool, bool], list] = {}
        for name, x in self.model_.named_parameters():
            if id(x) in ids:
                groups.setdefault((name in heads, x.ndim >= 2), []).append(x)
        spec = [{"params": xs, "lr": (self.head_lr or self.lr) if head else self.lr,
                 "weight_decay": self.weight_decay if decay else 0.0}
                for (head, decay), xs in sorted(groups.items())]
        opt = adamw(spec, lr=self.lr)
        sched = get_linear_schedule_with_warmup(opt, int(self.warmup_ratio * total_steps), total_steps)
        return opt, sched

    def _total_steps(self, n_texts: int) -> int:
        per_epoch = -(-n_texts // self.batch_size)
        total = per_epoch * self.epochs
        return min(total, self.max_steps) if self.max_steps else total

    def _train(self, enc: Encoded, Y: torch.Tensor, val, fingerprint: str) -> None:
        total = self._total_steps(self._epoch_size())
        opt, sched = self._optimizer(total)
        state, best = TrainState(), None
        ckpt = self._read_latest_checkpoint(fingerprint)
        if ckpt is not None:
            state, best = self._restore(ckpt, opt, sched)
        if not state.finished:
            best = self._loop(enc, Y, val, opt, sched, state, best, total, fingerprint)
        if best is not None:
            self._set_trainable_state(best)
        self.history_ = state.history
        self.model_.eval()

    def _loop(self, enc, Y, val, opt, sched, state: TrainState, best, total: int, fingerprint: str):
        self._windows = enc.windows_of()
        self._window_lengths = np.array([len(w) for w in enc.ids])
        lengths = enc.text_lengths()
        per_epoch = -(-self._epoch_size() // self.batch_size)
        ckpt_every, eval_every = self.checkpoint_steps, self.eval_steps
        # the loss stays on the device until an evaluation: no per-step GPU→CPU sync, so the CPU can
        # queue the next step while the GPU still computes this one
        t0, seen, loss_sum = time.perf_counter(), 0, torch.zeros((), device=self.device_)
        for epoch, b, batch in track(self._steps(lengths, state), description="Fine-tuning",
                                     total=total - state.global_step):
            dp = parallel.current()
            if dp is not None:  # dropout: a function of (seed, step, rank), so that a resume draws the same
                torch.manual_seed(dp.step_seed(self.seed, state.global_step))
            loss_sum += self._train_step(enc, Y, batch, opt, sched)
            seen += len(batch)
            state.epoch, state.batch_in_epoch, state.global_step = epoch, b + 1, state.global_step + 1
            end_of_epoch = b + 1 == per_epoch or state.global_step == total
            if end_of_epoch or (eval_every and state.global_step % eval_every == 0):
                best = self._evaluate(val, state, best, self._mean_train_loss(loss_sum, seen),
                                      seen / (time.perf_counter() - t0))
                # the next evaluation reports the loss and speed of the steps since this one
                loss_sum.zero_()
                seen, t0 = 0, time.perf_counter()
            stop = state.global_step >= total or bool(self.patience and state.bad_evals >= self.patience)
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
        for e in range(epoch, self.epochs):
            batches = self._epoch_batches(lengths, e)
            for b in range(skip if e == epoch else 0, len(batches)):
                yield e, b, batches[b]

    def _mean_train_loss(self, loss_sum: torch.Tensor, seen: int) -> float:
        """The mean training loss per text (with several processes: ``loss_sum`` summed over them first)."""
        dp = parallel.current()
        total = float(loss_sum) if dp is None else dp.sum([float(loss_sum)])[0]
        return total / max(seen, 1)

    def _train_step(self, enc: Encoded, Y: torch.Tensor, batch: np.ndarray, opt, sched) -> torch.Tensor:
        """One optimizer step; returns the batch's summed loss as a 0-d tensor on the device.

        With several processes (:mod:`~lexcoder.models.parallel`) this process computes the gradient of its
        shard of ``batch`` (each text weighted by ``1 / len(batch)``), and the gradients are summed over the
        processes before the step: every process then makes the step of the whole batch. The returned loss
        is then this process's part of the batch's.
        """
        self.model_.train()
        dp = parallel.current()
        loss = self._backward(enc, Y, batch if dp is None else dp.shard(batch), of=len(batch))
        if dp is not None:
            dp.sync_gradients(self._trainable_parameters())
        torch.nn.utils.clip_grad_norm_(self._trainable_parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        return loss * len(batch)

    def _backward(self, enc: Encoded, Y: torch.Tensor, batch: np.ndarray, *, of: int | None = None
                  ) -> torch.Tensor:
        """Accumulate the gradient of the batch's loss (the mean over its texts and labels); returns the loss.

        The batch runs in micro-batches of whole texts that fit one forward pass (see :meth:`_micro_batches`);
        each micro-batch's mean loss is weighted by its share of the batch's texts, so the summed gradient is
        the whole batch's (up to float rounding). ``of``: the texts of the whole batch when ``batch`` is a
        process's shard of it (the shares are then of the whole batch; an empty shard adds nothing).
        """
        of = len(batch) if of is None else of
        total = torch.zeros((), device=self.device_)
        for part in self._micro_batches(batch) if len(batch) else []:
            loss = self._loss(self._text_logits(self.model_, enc, part), Y[torch.as_tensor(part)].to(self.device_))
            if len(part) < of:
                loss = loss * (len(part) / of)
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
        dp = parallel.current()
        P = self._predict(val[0], self.model_) if dp is None else \
            dp.predict_sharded(val[0], lambda texts: self._predict(texts, self.model_))
        scores = validation_scores(val[1], P, self._link_groups())
        score = float(np.mean(scores))
        entry["val_macro_f1"] = round(score, 5)
        if self.target_type_ == MULTIOUTPUT:  # what each head contributes to the mean
            entry["val_macro_f1_parts"] = dict(zip(self._group_names(), (round(s, 5) for s in scores)))
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

    def _group_names(self) -> list[str]:
        """A name per link group: ``"labels"`` (the 0/1 labels' block), then each variable's name."""
        starts = {o.start: o.name for o in self.outputs_ if o.categorical}
        return [starts[cols.start] if soft else "labels" for cols, soft in self._link_groups()]

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
        settings = {k: v for k, v in self.get_params(deep=False).items() if k not in _MEMORY_ONLY}
        h = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
        for t in texts:
            h.update(t.encode("utf-8", "surrogatepass") + b"\0")
        h.update(np.ascontiguousarray(Y).tobytes())
        if self.target_type_ == MULTIOUTPUT:  # the same matrix may encode other outputs (a label vs a 0/1 variable)
            h.update(json.dumps([o.to_json() for o in self.outputs_], default=str).encode())
        h.update(np.packbits(coded).tobytes())
        if val is not None:
            h.update(str(len(val[0])).encode() + np.ascontiguousarray(val[1]).tobytes())
        return h.hexdigest()[:20]

    def _latest_checkpoint(self, fingerprint: str) -> Path | None:
        return None if self.checkpoint_dir is None else latest_checkpoint(Path(self.checkpoint_dir), fingerprint)

    def _read_latest_checkpoint(self, fingerprint: str) -> Checkpoint | None:
        """The newest checkpoint of this training problem (None if there is none); with several processes,
        rank 0 reads it and sends it to the others."""
        dp = parallel.current()
        ckpt = None
        if dp is None or dp.is_main:
            path = self._latest_checkpoint(fingerprint)
            ckpt = None if path is None else read_checkpoint(path)
            if ckpt is not None:
                log.info("Resuming from checkpoint %s (step %d%s).", path, ckpt.state.global_step,
                         ", already finished" if ckpt.state.finished else "")
        return ckpt if dp is None else dp.share(ckpt)

    def _checkpoint(self, opt, sched, state: TrainState, best, fingerprint: str) -> None:
        dp = parallel.current()
        if self.checkpoint_dir is not None and (dp is None or dp.is_main):
            write_checkpoint(Path(self.checkpoint_dir), state, self._trainable_state(), best, opt, sched,
                             fingerprint)

    def _restore(self, ckpt: Checkpoint, opt, sched) -> tuple[TrainState, dict[str, torch.Tensor] | None]:
        self._set_trainable_state(ckpt.trainable)
        opt.load_state_dict(ckpt.optimizer)
        sched.load_state_dict(ckpt.scheduler)
        if ckpt.threads and not self.num_threads:
            # the same reduction order as before the interruption (fit() restores the caller's count)
            self.threads_ = int(ckpt.threads)
            torch.set_num_threads(self.threads_)
        return ckpt.state, ckpt.best

    # -- prediction -------------------------------------------------------------------------------
    def _predict_proba(self, texts: list[str]) -> np.ndarray:
        """Probabilities ``(len(texts), width)``: windows sorted by length, pooled per text."""
        if self._parts():
            return self._assemble(texts)
        with torch_threads(self.num_threads):
            return self._predict(texts, self._inference_model())

    def _predict(self, texts: list[str], model: torch.nn.Module) -> np.ndarray:
        n_labels = self._n_columns()
        if not texts:
            return np.zeros((0, n_labels))
        model.eval()
        enc = self._encode(texts)
        lengths = np.array([len(w) for w in enc.ids])
        order = np.argsort(lengths, kind="stable")
        logits = np.empty((len(enc.ids), n_labels), dtype=np.float32)
        passes = pack(np.ones(len(order), dtype=np.int64), lengths[order], self._token_cap(training=False),
                      max_count=self.eval_batch_size)
        # one autocast region around every pass: bf16 autocast then casts the weights once, not once per batch
        with torch.inference_mode(), self._autocast(training=False):
            for part in passes:
                idx = order[part]
                logits[idx] = self._forward(model, **self._collate([enc.ids[i] for i in idx])).cpu().numpy()
        return np.hstack([pool_probabilities(logits[:, cols], enc.owner, len(texts), self.pooling, softmax=soft)
                          for cols, soft in self._link_groups()])

    def _inference_model(self) -> torch.nn.Module:
        """The network in eval mode, dynamically int8-quantised on CPU when ``quantize_int8``."""
        if getattr(self, "_infer_model", None) is None:
            self.model_.eval()
            model = self.model_
            if self.quantize_int8 and self.device_.type == "cpu":
                model = quantize_int8(model)
            self._infer_model = model
        return self._infer_model

    # -- persistence ------------------------------------------------------------------------------
    def _save(self, directory: Path) -> None:
        if self._parts():  # separate networks: each saved whole in groupN/
            for g, part in enumerate(self._parts()):
                part.save(directory / f"group{g}")
            return
        self._save_weights(directory)
        self.tokenizer_.save_pretrained(directory / "tokenizer")
        write_json({"history": getattr(self, "history_", []), "threads": getattr(self, "threads_", None),
                    "training_precision": getattr(self, "training_precision_", None),
                    "inference_precision": getattr(self, "inference_precision_", None)},
                   directory / "training_history.json")

    @classmethod
    def _load(cls, directory: Path, meta: dict[str, Any]) -> "TransformerClassifier":
        from transformers import AutoTokenizer
        model = cls.from_saved_params(meta["params"])
        if (directory / "group0" / META_FILE).is_file():
            model.group_models_ = []
            while (directory / f"group{len(model.group_models_)}" / META_FILE).is_file():
                model.group_models_.append(cls.load(directory / f"group{len(model.group_models_)}"))
            model.history_ = [m.history_ for m in model.group_models_]
            return model
        model.device_ = load_device(model.device)
        model.tokenizer_ = AutoTokenizer.from_pretrained(directory / "tokenizer", local_files_only=True)
        model.model_ = cls._load_weights(directory, meta, model.device_).to(model.device_).eval()
        model._infer_model = None
        hist = directory / "training_history.json"
        info = json.loads(hist.read_text(encoding="utf-8")) if hist.is_file() else {}
        model.history_ = info.get("history", [])
        if info.get("threads"):
            model.threads_ = int(info["threads"])
        model.inference_precision_ = info.get("inference_precision")
        model.training_precision_ = info.get("training_precision")
        return model


# -- helpers ------------------------------------------------------------------------------------
def validation_scores(Y: np.ndarray, P: np.ndarray, groups: list[LinkGroup]) -> list[float]:
    """Per link group: the 0/1 labels' macro-F1 at their best thresholds, or a variable's macro-F1."""
    return [macro_f1_of_classes(Y[:, cols], P[:, cols]) if soft else macro_f1_at_best_thresholds(Y[:, cols], P[:, cols])
            for cols, soft in groups]


def macro_f1_of_classes(Y: np.ndarray, P: np.ndarray) -> float:
    """Macro-F1 of the most probable class (``P`` ``(n, k)``) against the one-hot ``Y``."""
    from sklearn.metrics import f1_score
    return float(f1_score(Y.argmax(axis=1), P.argmax(axis=1), labels=np.arange(Y.shape[1]), average="macro",
                          zero_division=0))


def macro_f1_at_best_thresholds(Y: np.ndarray, P: np.ndarray) -> float:
    """Mean over labels with a 1 in ``Y`` of the highest F1 along the label's threshold curve (0 if none)."""
    scores = [f1_curve(Y[:, j], P[:, j])[1].max() for j in range(Y.shape[1]) if Y[:, j].any()]
    return float(np.mean(scores)) if scores else 0.0
