"""The query strategies as plain functions, on real ToS sentences and a model trained on other documents."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lexcoder.active.strategies import (NEAR_DUPLICATE, allocate, cluster_round_robin, cluster_stratified,
                                        expected_positive_order, keyword_mask, kmeans_clusters, margin_scores,
                                        rarity_weights, take_diverse, text_vectors, uncertainty_scores)
from lexcoder.errors import ConfigError


def test_rarity_weights_favour_labels_with_few_positives():
    w = rarity_weights([498, 64, 36, 0])
    assert w[-1] == 1.0 and np.all(np.diff(w) > 0)
    assert w[2] / w[0] == pytest.approx(np.sqrt(499 / 37))
    with pytest.raises(ValueError, match="non-negative"):
        rarity_weights([3, -1])


def test_uncertainty_is_highest_at_each_labels_own_threshold():
    P = np.array([[0.10, 0.90], [0.30, 0.02], [0.55, 0.05]])
    scores, label = uncertainty_scores(P, [0.3, 0.05])
    assert scores[1] == 1.0 and label[1] == 0  # exactly at label 0's threshold
    assert scores[2] == 1.0 and label[2] == 1  # exactly at label 1's (low) threshold, far from 0.5
    assert scores[0] < 0.9
    weighted, which = uncertainty_scores(P, [0.3, 0.05], weights=np.array([0.1, 1.0]))
    assert which[1] == 1  # the rare label's weight wins where both are unsure-ish
    with pytest.raises(ValueError, match="shape"):
        uncertainty_scores(P, [0.3])


def test_margin_of_a_categorical_prediction():
    P = np.array([[0.5, 0.5, 0.0], [1.0, 0.0, 0.0], [0.6, 0.3, 0.1]])
    np.testing.assert_allclose(margin_scores(P), [1.0, 0.0, 0.7])


def test_expected_positives_take_the_rare_labels_in_turn(pool):
    rare = [pool.labels.index("arbitration"), pool.labels.index("jurisdiction")]
    pairs = list(zip(range(20), expected_positive_order(pool.probs, rare)))
    rows = [row for _, (row, _) in pairs]
    assert len(set(rows)) == len(rows)
    assert [j for _, (_, j) in pairs[:4]] == [rare[0], rare[1], rare[0], rare[1]]
    first = [row for _, (row, j) in pairs if j == rare[0]]
    assert pool.probs[first[0], rare[0]] == pool.probs[:, rare[0]].max()
    # on texts the model never saw, its likeliest arbitration clauses are mostly real ones; a random pick is not
    truth = pool.truth.to_numpy()
    assert truth[first, rare[0]].mean() > 0.5 > 20 * truth[:, rare[0]].mean()


def test_a_batch_holds_no_near_duplicates(pool):
    X = text_vectors(pool.texts)
    order = np.argsort(-pool.probs[:, 0])
    top = order[:200]
    sims = (X[top] @ X[top].T).toarray()
    np.fill_diagonal(sims, 0)
    assert sims.max() >= NEAR_DUPLICATE  # the raw ranking repeats itself (boilerplate clauses) ...
    chosen = take_diverse(order, X, 200, texts=pool.texts)
    sims = (X[chosen] @ X[chosen].T).toarray()
    np.fill_diagonal(sims, 0)
    assert len(chosen) == 200 and sims.max() < NEAR_DUPLICATE  # ... the batch does not
    assert len({pool.texts[r] for r in chosen}) == 200
    assert chosen[0] == order[0]
    more = take_diverse(order, X, 50, taken=chosen, texts=pool.texts)
    assert not set(more) & set(chosen)


def test_cold_start_spreads_the_seed_batch_over_topic_clusters(pool):
    X = text_vectors(pool.texts)
    clusters, _ = kmeans_clusters(X, 20, seed=1)
    order = cluster_stratified(clusters, 100, seed=3)
    assert sorted(order) == list(range(len(pool.texts)))
    got = np.bincount(clusters[order[:100]], minlength=20)
    sizes = np.bincount(clusters, minlength=20)
    assert np.all(got >= 1)  # every cluster is represented, the rest in proportion to the cluster's size
    want = (sizes - 1) / (sizes - 1).sum() * (100 - 20)
    assert np.all(np.abs(got - 1 - want) <= 1.0 + 1e-9)
    np.testing.assert_array_equal(order, cluster_stratified(clusters, 100, seed=3))  # seeded
    assert not np.array_equal(order[:100], cluster_stratified(clusters, 100, seed=4)[:100])


def test_diversity_visits_uncovered_clusters_first():
    clusters = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2])
    order = cluster_round_robin(clusters, covered=np.array([5, 0, 1]), seed=0)
    assert [clusters[r] for r in order[:3]] == [1, 2, 0]
    assert sorted(order) == list(range(9))


def test_keyword_candidates(pool):
    hits = keyword_mask(pool.texts, r"arbitrat\w*")
    assert hits.any() and all("arbitrat" in pool.texts[i].lower() for i in np.flatnonzero(hits))
    assert pool.truth["arbitration"].to_numpy()[hits].mean() > 10 * pool.truth["arbitration"].mean()
    with pytest.raises(ConfigError, match="not a valid regular expression"):
        keyword_mask(pool.texts, "arbitrat(")


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 30), min_size=1, max_size=8), st.integers(0, 120), st.booleans())
def test_allocation_is_proportional_and_never_exceeds_a_group(sizes, n, at_least_one):
    sizes = np.array(sizes)
    quota = allocate(sizes, n, at_least_one=at_least_one)
    assert quota.sum() == min(n, sizes.sum())
    assert np.all(quota <= sizes) and np.all(quota >= 0)
    if not at_least_one and sizes.sum():
        assert np.all(np.abs(quota - n * sizes / sizes.sum()) < 1.0) or n > sizes.sum()
    if at_least_one and n >= np.count_nonzero(sizes):
        assert np.all(quota[sizes > 0] >= 1)
