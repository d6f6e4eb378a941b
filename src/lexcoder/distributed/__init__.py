"""Corpus-scale prediction: shards for array jobs, their merge, and the Ray Data engine.

Every path codes batches with :class:`lexcoder.predict.Coder` (the one batch function), so a shard, a
Ray worker or a Spark ``mapInPandas`` writes exactly the codes :func:`lexcoder.predict_file` writes.

- :mod:`~lexcoder.distributed.shards`: :func:`predict_shard` (shard ``i`` of ``N``, atomic, skipped when done);
- :mod:`~lexcoder.distributed.merge`: :func:`merge_shards` (checked, in input order);
- :mod:`~lexcoder.distributed.ray_engine`: :func:`predict_ray` (``pip install 'lexcoder[ray]'``; imported lazily).
"""
from __future__ import annotations

from .merge import MergeResult, merge_shards
from .shards import ShardResult, check_shard_spec, part_name, predict_shard, shard_of

__all__ = ["MergeResult", "ShardResult", "check_shard_spec", "merge_shards", "part_name", "predict_ray",
           "predict_shard", "shard_of"]


def predict_ray(*args, **kwargs):
    """:func:`lexcoder.distributed.ray_engine.predict_ray` (Ray is imported only when it is called)."""
    from .ray_engine import predict_ray as run
    return run(*args, **kwargs)
