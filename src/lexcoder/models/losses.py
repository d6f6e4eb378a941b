"""The training losses: one binary cross-entropy per 0/1 label, a cross-entropy over each categorical
variable's classes, both reweighted for rare labels and classes, and their mean when 0/1 labels and
categorical variables share one network (:func:`grouped_loss`).

A label coded in 2 % of texts would otherwise teach the network to say "no" everywhere: each label's
positives weigh ``negatives / positives`` (capped, since a label with a handful of positives would get
weights in the hundreds and a noisy gradient). The focal variant (``focal_gamma > 0``) further
down-weights the cells the network already gets right.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def positive_weights(prevalence: np.ndarray, *, cap: float, device: torch.device) -> torch.Tensor:
    """Per-label ``pos_weight`` = negatives / positives, clipped to ``[1, cap]`` (float32 on ``device``).

    ``prevalence`` is each label's share of positive texts among those trained on.
    """
    prevalence = np.asarray(prevalence, dtype=float)
    return torch.tensor(np.clip((1 - prevalence) / prevalence, 1.0, cap), dtype=torch.float32, device=device)


def multilabel_loss(logits: torch.Tensor, y: torch.Tensor, *, pos_weight: torch.Tensor,
                    focal_gamma: float = 0.0) -> torch.Tensor:
    """Mean over cells of the binary cross-entropy with ``pos_weight`` (focal when ``focal_gamma > 0``).

    Parameters
    ----------
    logits, y : ``(n_texts, n_labels)`` text-level logits and 0/1 targets (float)
    pos_weight : ``(n_labels,)`` weight of a positive cell (see :func:`positive_weights`)
    focal_gamma : focal loss exponent: each cell is multiplied by ``(1 - p_true) ** focal_gamma``
    """
    bce = F.binary_cross_entropy_with_logits(logits, y, pos_weight=pos_weight, reduction="none")
    if focal_gamma > 0:
        p = torch.sigmoid(logits)
        p_true = torch.where(y > 0.5, p, 1 - p)
        bce = bce * (1 - p_true).pow(focal_gamma)
    return bce.mean()


def class_weights(Y: np.ndarray, *, cap: float, device: torch.device) -> torch.Tensor:
    """Per-class weights for a one-hot ``Y`` ``(n, k)``: scikit-learn's "balanced" weights
    ``n / (k * n_class)``, the largest capped at ``cap`` times the smallest (float32 on ``device``)."""
    counts = np.asarray(Y).sum(axis=0).astype(float)
    w = len(Y) / (len(counts) * np.maximum(counts, 1.0))
    w = np.minimum(w, w.min() * cap)
    return torch.tensor(w, dtype=torch.float32, device=device)


def multiclass_loss(logits: torch.Tensor, y: torch.Tensor, *, weight: torch.Tensor) -> torch.Tensor:
    """Class-weighted cross-entropy of ``(n_texts, k)`` logits against a one-hot ``y``, averaged over texts
    by their weights (PyTorch's ``cross_entropy``)."""
    return F.cross_entropy(logits, y.argmax(dim=1), weight=weight)


def loss_weights(Y: np.ndarray, groups, *, cap: float, texts_per_epoch: int, device: torch.device
                 ) -> list[torch.Tensor]:
    """The weights of each link group of the 0/1 matrix ``Y`` ``(n, width)``: for the 0/1 labels' block
    their ``pos_weight`` (each label's positives' share among the ``texts_per_epoch`` texts an epoch trains
    on, see :func:`positive_weights`), for a categorical variable's block its :func:`class_weights`.

    ``groups``: ``(columns, softmax)`` pairs (:func:`lexcoder.models.outputs.link_groups`).
    """
    return [class_weights(Y[:, cols], cap=cap, device=device) if soft else
            positive_weights(Y[:, cols].sum(axis=0) / texts_per_epoch, cap=cap, device=device)
            for cols, soft in groups]


def grouped_loss(logits: torch.Tensor, y: torch.Tensor, groups, weights: list[torch.Tensor], *,
                 focal_gamma: float = 0.0) -> torch.Tensor:
    """The loss of a head with several link groups: the mean over groups of each group's own loss.

    The 0/1 labels' block takes :func:`multilabel_loss` (the mean over its cells, as a multi-label model),
    each categorical variable's block its class-weighted :func:`multiclass_loss` (as a multi-class model).
    Each group weighs the same, whatever its number of labels or classes, because

    - a head with one group optimises exactly the loss of the single-target model (nothing changes for
      multi-label, binary or multi-class targets);
    - the gradient keeps the scale of one model's, so learning rates, warm-up and gradient clipping tuned
      for one model still fit, however many variables share the body (a sum would grow with their number);
    - early stopping scores the same units: the mean of the labels' macro-F1 and each variable's macro-F1.

    Parameters
    ----------
    logits, y : ``(n_texts, width)`` text-level logits and the 0/1 (one-hot per variable) targets (float)
    groups : ``(columns, softmax)`` pairs covering the width (:func:`lexcoder.models.outputs.link_groups`)
    weights : per group, as :func:`loss_weights` returns them
    focal_gamma : focal exponent of the labels' binary cross-entropy
    """
    parts = [multiclass_loss(logits[:, cols], y[:, cols], weight=w) if soft else
             multilabel_loss(logits[:, cols], y[:, cols], pos_weight=w, focal_gamma=focal_gamma)
             for (cols, soft), w in zip(groups, weights)]
    return parts[0] if len(parts) == 1 else torch.stack(parts).mean()
