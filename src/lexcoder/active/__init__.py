"""What to code next (active learning) and how to draw the human-coded gold sample for estimates.

- :mod:`~lexcoder.active.strategies`: the query strategies as plain functions over arrays (uncertainty with
  rare labels favoured, expected positives of rare labels, TF-IDF cluster diversity, cold start, keywords,
  and the near-duplicate guard that makes a batch batch-aware);
- :mod:`~lexcoder.active.batches`: :func:`choose_batch`, the strategies combined into one batch with a reason
  per text;
- :mod:`~lexcoder.active.rounds`: ``lexcoder next`` and ``lexcoder add`` on files: the batch to code, the
  coded batch read back and recorded in the run folder, and the next round's training table;
- :mod:`~lexcoder.active.sampling`: ``lexcoder sample``: the gold sample (simple random, stratified, or with
  unequal inclusion probabilities) and the plan of its size;
- :mod:`~lexcoder.active.provenance`: the columns that say how a text was chosen, and the check that keeps
  actively chosen texts out of a gold sample.
"""
from __future__ import annotations

from .batches import BATCH_COLUMNS, DEFAULT_MIX, STRATEGIES, choose_batch, parse_mix, resolve_mix

__all__ = ["BATCH_COLUMNS", "DEFAULT_MIX", "STRATEGIES", "choose_batch", "parse_mix", "resolve_mix"]
