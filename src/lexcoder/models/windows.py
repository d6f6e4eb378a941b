"""Texts as token windows, and the batches and forward passes they are cut into.

Texts longer than ``max_length`` tokens are cut into windows that overlap by ``stride`` tokens; a text's
logits are pooled over its windows (``"max"``: the most confident window; ``"mean"``: mean probability)
both during training (the loss sees the pooled text-level prediction) and prediction. Batches are padded
dynamically (to their longest window) and grouped by length, and :func:`pack` cuts them so that no
forward pass holds more than a token budget.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy.special import expit as sigmoid  # the logistic function, stable for any logit
from scipy.special import softmax as scipy_softmax


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


def encode_windows(tokenizer, texts: Sequence[str], *, max_length: int, stride: int) -> Encoded:
    """Tokenise ``texts`` into windows of at most ``max_length`` tokens (special tokens included) that
    overlap by ``stride`` tokens (a fast Hugging Face tokenizer's overflowing tokens)."""
    enc = tokenizer(list(texts), truncation=True, max_length=max_length, stride=stride,
                    return_overflowing_tokens=True, padding=False, return_attention_mask=False)
    owner = np.asarray(enc["overflow_to_sample_mapping"], dtype=np.int64)
    return Encoded(ids=list(enc["input_ids"]), owner=owner, n_texts=len(texts))


def collate(windows: list[list[int]], *, pad_id: int, left: bool, device: torch.device) -> dict[str, torch.Tensor]:
    """``input_ids`` and ``attention_mask`` of ``windows`` padded to the longest one (dynamic padding),
    on the left for tokenizers that pad there (decoder LLMs read the last token)."""
    longest = max(len(w) for w in windows)
    ids = torch.full((len(windows), longest), pad_id, dtype=torch.long)
    mask = torch.zeros((len(windows), longest), dtype=torch.long)
    for i, w in enumerate(windows):
        sl = slice(longest - len(w), longest) if left else slice(0, len(w))
        ids[i, sl] = torch.tensor(w, dtype=torch.long)
        mask[i, sl] = 1
    return {"input_ids": ids.to(device), "attention_mask": mask.to(device)}


def length_grouped_batches(texts: np.ndarray, lengths: np.ndarray, batch_size: int,
                           rng: np.random.Generator) -> list[np.ndarray]:
    """``texts`` (indices) in batches of similar lengths, yet in random order.

    Texts are shuffled, cut into mega-batches of 50 batches, sorted by length inside each, cut into
    batches, and the batches shuffled again: little padding, yet random batches (the recipe of
    transformers' ``group_by_length``).
    """
    perm = texts[rng.permutation(len(texts))]
    batches = []
    for start in range(0, len(perm), 50 * batch_size):
        mega = perm[start:start + 50 * batch_size]
        mega = mega[np.argsort(-lengths[mega], kind="stable")]
        batches.extend(mega[i:i + batch_size] for i in range(0, len(mega), batch_size))
    return [batches[i] for i in rng.permutation(len(batches))]


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


def pool_logits(logits: torch.Tensor, owner: torch.Tensor, n_texts: int, pooling: str, *,
                softmax: bool = False) -> torch.Tensor:
    """Pool window logits ``(n_windows, k)`` into text logits ``(n_texts, k)`` (differentiable).

    ``"max"`` takes each output's largest logit over the windows (for sigmoids: the most confident window);
    ``"mean"`` averages the windows' probabilities (sigmoid, or with ``softmax`` the softmax over the k
    outputs) and returns logits that give back that mean (logits, or log-probabilities).
    """
    index = owner[:, None].expand_as(logits)
    if pooling == "max":
        return logits.new_zeros((n_texts, logits.shape[1])).scatter_reduce(0, index, logits, "amax",
                                                                           include_self=False)
    probs = torch.softmax(logits, dim=1) if softmax else torch.sigmoid(logits)
    mean = probs.new_zeros((n_texts, logits.shape[1])).scatter_reduce(0, index, probs, "mean", include_self=False)
    return torch.log(mean.clamp_min(1e-12)) if softmax else torch.logit(mean, eps=1e-6)


def pool_probabilities(logits: np.ndarray, owner: np.ndarray, n_texts: int, pooling: str, *,
                       softmax: bool = False) -> np.ndarray:
    """Text probabilities ``(n_texts, k)``, float64, from window logits ``(n_windows, k)``: independent
    sigmoids, or with ``softmax`` one distribution over the k outputs (pooled as :func:`pool_logits`)."""
    z = logits.astype(np.float64)
    link = _softmax if softmax else sigmoid
    if len(z) == n_texts and np.array_equal(owner, np.arange(n_texts)):
        return link(z)
    if pooling == "max":
        out = np.full((n_texts, z.shape[1]), -np.inf)
        np.maximum.at(out, owner, z)
        return link(out)
    out = np.zeros((n_texts, z.shape[1]))
    np.add.at(out, owner, link(z))
    return out / np.bincount(owner, minlength=n_texts)[:, None]


def _softmax(z: np.ndarray) -> np.ndarray:
    return scipy_softmax(z, axis=1)
