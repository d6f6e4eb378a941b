"""The training losses: one binary cross-entropy per 0/1 label, or a cross-entropy over a categorical
variable's classes, both reweighted for rare labels and classes.

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
