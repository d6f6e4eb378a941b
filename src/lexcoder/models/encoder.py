"""Fine-tuned encoders (MiniLM, DistilBERT, RoBERTa, ...) as multi-label classifiers.

By default one network with one sigmoid output per label is trained (``problem_type =
"multi_label_classification"``), and categorical variables get a softmax block each in the same head
(:mod:`~lexcoder.models.transformer`); ``per_label = true`` trains one binary network per label instead, as
the reference workflow did, behind the same interface (for comparison: it costs ``n_labels`` times as much;
with categorical variables, each variable gets its own network too).

Which vector the classification head reads: Hugging Face's ``*ForSequenceClassification`` heads read the
first ([CLS]) token, but sentence-transformers models (all-MiniLM-L6-v2, the default) were trained so that
the *mean* of the token vectors is the sentence's meaning and their [CLS] vector was never trained for that.
``head = "auto"`` therefore reads the mean for models that declare mean pooling (their ``modules.json``)
and the usual [CLS] head otherwise.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
import torch
from pydantic import Field
from safetensors.torch import load_file, save_file

from ..errors import LexcoderError
from ..progress import track
from .base import model_family
from .outputs import MULTIOUTPUT, n_columns, outputs_from_meta
from .pretrained import resolve_model_path
from .tfidf import TfidfClassifier
from .transformer import TransformerClassifier

log = logging.getLogger(__name__)

_MEAN_HEAD_FILE = "mean_head.safetensors"


class MeanPoolingClassifier(torch.nn.Module):
    """An encoder whose linear head reads the mean of the (unpadded) token vectors.

    Parameters
    ----------
    encoder : a Hugging Face base model (``AutoModel``) returning ``last_hidden_state``
    num_labels : outputs (one logit per label)
    """

    def __init__(self, encoder: torch.nn.Module, num_labels: int) -> None:
        super().__init__()
        self.encoder = encoder
        cfg = encoder.config
        rate = getattr(cfg, "hidden_dropout_prob", None)  # BERT-style name; DistilBERT calls it "dropout"
        self.dropout = torch.nn.Dropout(getattr(cfg, "dropout", 0.1) if rate is None else rate)
        self.classifier = torch.nn.Linear(cfg.hidden_size, num_labels)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor):
        from transformers.modeling_outputs import SequenceClassifierOutput
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return SequenceClassifierOutput(logits=self.classifier(self.dropout(mean_pool(hidden, attention_mask))))


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """``(batch, hidden)`` mean of each text's token vectors, padding left out."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)


def declares_mean_pooling(model_dir: str) -> bool:
    """Whether ``model_dir`` is a sentence-transformers model whose Pooling module averages tokens."""
    modules = Path(model_dir) / "modules.json"
    if not modules.is_file():
        return False
    try:
        for module in json.loads(modules.read_text(encoding="utf-8")):
            if str(module.get("type", "")).endswith("Pooling"):
                cfg = json.loads((Path(model_dir) / module["path"] / "config.json").read_text(encoding="utf-8"))
                return bool(cfg.get("pooling_mode_mean_tokens"))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        log.debug("could not read the pooling of %s: %s", model_dir, err)
    return False


def sentence_embeddings(name: str, texts: Sequence[str], *, max_length: int = 128, batch_size: int = 64,
                        description: str = "Embedding the texts") -> np.ndarray:
    """``(n, d)`` unit-length mean-pooled embeddings of ``texts`` from the pretrained encoder ``name``.

    The vector :class:`MeanPoolingClassifier` reads, taken from the encoder as pretrained (no code enters
    it): for sentence-transformers models such as ``"minilm"`` the sentence embedding they were trained
    to give, so its cosine is their text similarity. ``name`` is resolved as the encoder family resolves
    it (an alias, a local directory or a cached hub id; never downloaded). Texts longer than
    ``max_length`` tokens are truncated. The texts are batched by length, so a batch pads little
    (3.2x the speed of batches in input order on 4,000 ToS sentences, ``benchmarks/bench_embeddings.py``);
    rows come back in input order.
    """
    from transformers import AutoModel, AutoTokenizer
    path = resolve_model_path(name)
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    network = AutoModel.from_pretrained(path, local_files_only=True, dtype=torch.float32).eval()
    texts = [str(t) for t in texts]
    by_length = np.argsort([len(t) for t in texts], kind="stable")  # characters: a cheap proxy for tokens
    out = np.zeros((len(texts), int(network.config.hidden_size)), dtype=np.float32)
    with torch.inference_mode():
        for start in track(range(0, len(texts), batch_size), description=description):
            rows = by_length[start:start + batch_size]
            enc = tokenizer([texts[i] for i in rows], truncation=True, max_length=max_length, padding=True,
                            return_tensors="pt")
            hidden = network(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).last_hidden_state
            out[rows] = mean_pool(hidden, enc["attention_mask"]).numpy()
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


@model_family
class EncoderClassifier(TransformerClassifier):
    """A Hugging Face encoder fine-tuned with one multi-label head (or one model per label).

    The training settings are :class:`~lexcoder.models.transformer.TransformerClassifier`'s.
    """

    kind: ClassVar[str] = "encoder"

    name: Annotated[str, Field(description=(
        'pretrained encoder: "minilm" (the bundled all-MiniLM-L6-v2), a local directory or a cached hub '
        "id"))] = "minilm"
    head: Annotated[Literal["auto", "mean", "cls"], Field(description=(
        'what the classification head reads: "mean" (the mean of the token vectors), "cls" (the model\'s own '
        'head on the first token) or "auto" ("mean" for sentence-transformers models that pool by the mean, '
        'such as minilm; "cls" otherwise)'))] = "auto"
    per_label: Annotated[bool, Field(description=(
        "train one binary model per label instead of one multi-label model (n_labels times the cost); with "
        "categorical variables, one model per label and one per variable"))] = False
    blend_tfidf: Annotated[float, Field(ge=0, lt=1, description=(
        "weight of a TF-IDF model's probabilities averaged into the encoder's (0: encoder only; 0.5: the "
        "plain mean, which beats either model alone on the ToS data)"))] = 0.0

    def head_type(self) -> str:
        """``"mean"`` or ``"cls"``: the head this model trains (``head = "auto"`` resolved)."""
        if self.head == "auto":
            return "mean" if declares_mean_pooling(self._source()) else "cls"
        return self.head

    def _build_model(self, num_labels: int) -> torch.nn.Module:
        from transformers import AutoModel, AutoModelForSequenceClassification
        from transformers.utils import logging as hf_logging
        head = self.head_type()
        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()  # "newly initialized classifier weights" is expected here
        try:  # float32 weights even from a fp16/bf16 checkpoint: AdamW on half-precision weights loses updates
            if head == "mean":
                encoder = AutoModel.from_pretrained(self._source(), local_files_only=True, dtype=torch.float32)
                return MeanPoolingClassifier(encoder, num_labels)
            return AutoModelForSequenceClassification.from_pretrained(
                self._source(), num_labels=num_labels, problem_type="multi_label_classification",
                local_files_only=True, dtype=torch.float32)
        finally:
            hf_logging.set_verbosity(verbosity)

    def _save_weights(self, directory: Path) -> None:
        if isinstance(self.model_, MeanPoolingClassifier):
            self.model_.encoder.save_pretrained(directory / "model", safe_serialization=True)
            save_file({k: v.contiguous() for k, v in self.model_.classifier.state_dict().items()},
                      directory / _MEAN_HEAD_FILE)
        else:
            super()._save_weights(directory)

    @classmethod
    def _load_weights(cls, directory: Path, meta: dict[str, Any], device: torch.device) -> torch.nn.Module:
        if not (directory / _MEAN_HEAD_FILE).is_file():
            return super()._load_weights(directory, meta, device)
        from transformers import AutoModel
        encoder = AutoModel.from_pretrained(directory / "model", local_files_only=True, dtype=torch.float32)
        model = MeanPoolingClassifier(encoder, n_columns(outputs_from_meta(meta)))
        model.classifier.load_state_dict(load_file(directory / _MEAN_HEAD_FILE, device="cpu"))
        return model

    # -- one binary model per label ------------------------------------------------------------------
    def _single_network_settings(self) -> dict[str, Any]:
        # the TF-IDF blend is the whole model's, over the parts' assembled probabilities
        return {**super()._single_network_settings(), "per_label": False, "blend_tfidf": 0.0}

    def _label_model(self, j: int) -> "EncoderClassifier":
        return self._part_model(f"label{j}")

    def _per_label_models(self) -> bool:
        """Whether this model is (or is fitted as) one binary model per 0/1 label of a label matrix; with a
        multi-output target ``per_label`` trains one network per output instead (the generic parts)."""
        return self.per_label and getattr(self, "target_type_", None) != MULTIOUTPUT

    def _parts(self) -> list[TransformerClassifier]:
        return list(getattr(self, "label_models_", None) or []) if self._per_label_models() else super()._parts()

    def _fit(self, texts, Y, val_texts, val_Y, *, coded=None) -> None:
        """Fine-tune (see :meth:`TransformerClassifier._fit`); with ``per_label``, one model per label."""
        if self.per_label and self.multiclass:
            raise LexcoderError("per_label = true trains one binary model per 0/1 label; a categorical variable "
                                "needs one model over its classes (per_label = false).")
        if self._per_label_models():
            self._fit_per_label(texts, Y, val_texts, val_Y)
        else:
            super()._fit(texts, Y, val_texts, val_Y, coded=coded)
        if self.blend_tfidf:  # TF-IDF on the same target (a variable's softmax stays one), blended per column
            (y, extra), val_y = self._target_of(Y), None if val_Y is None else self._target_of(val_Y)[0]
            self.tfidf_ = TfidfClassifier(seed=self.seed).fit(texts, y, val_texts, val_y,
                                                              label_names=self.label_names_, **extra)

    def _fit_per_label(self, texts, Y, val_texts, val_Y) -> None:
        self.label_models_ = []
        # with negative_ratio, every label's model keeps the texts with *any* code (the other labels' clauses
        # are its hardest negatives): the same epochs as one multi-label model, not a handful of steps
        coded = Y.sum(axis=1) > 0
        for j, name in enumerate(self.label_names_):
            log.info("per-label mode: training the model for %s (%d of %d)", name, j + 1, len(self.label_names_))
            sub = self._label_model(j).fit(texts, Y[:, [j]], val_texts, None if val_Y is None else val_Y[:, [j]],
                                           label_names=[name], coded=coded)
            self.label_models_.append(sub)
        self.history_ = [m.history_ for m in self.label_models_]

    def _predict_proba(self, texts: list[str]) -> np.ndarray:
        """Probabilities ``(len(texts), width)``: the network's, or its parts' (per label) assembled."""
        P = super()._predict_proba(texts)
        w = self.blend_tfidf
        return (1 - w) * P + w * self.tfidf_._predict_proba(texts) if w else P

    def _save(self, directory: Path) -> None:
        if self._per_label_models():
            for j, m in enumerate(self.label_models_):
                m.save(directory / f"label{j}")
        else:
            super()._save(directory)
        if self.blend_tfidf:
            self.tfidf_.save(directory / "tfidf")

    @classmethod
    def _load(cls, directory: Path, meta: dict[str, Any]) -> "EncoderClassifier":
        if meta["params"].get("per_label") and meta.get("target_type") != MULTIOUTPUT:
            model = cls.from_saved_params(meta["params"])
            model.label_models_ = [EncoderClassifier.load(directory / f"label{j}")
                                   for j in range(len(meta["label_names"]))]
            model.history_ = [m.history_ for m in model.label_models_]
        else:
            model = super()._load(directory, meta)
        if model.blend_tfidf:
            model.tfidf_ = TfidfClassifier.load(directory / "tfidf")
        return model
