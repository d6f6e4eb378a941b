"""Query strategies: which uncoded texts are worth a coder's time, as plain functions over arrays.

Every function takes the model's outputs for the *pool* (the uncoded texts) as arrays and returns scores
or row positions; none reads files or keeps state, so the simulation benchmark
(``benchmarks/bench_active_learning.py``) and ``lexcoder next`` run exactly the same code.

Shapes used throughout:

- ``probs``: ``(n_texts, n_labels)`` probabilities of the 0/1 labels (``<label>_prob``);
- ``thresholds``: ``(n_labels,)`` the run's decision thresholds (tuned on validation);
- ``n_positive``: ``(n_labels,)`` how many coded texts are 1 for each label so far;
- ``class_probs``: ``(n_texts, n_classes)`` probabilities of one categorical variable's classes;
- ``X``: ``(n_texts, n_features)`` L2-normalised TF-IDF rows (:func:`text_vectors`), so ``X @ X.T`` is
  the cosine similarity.

The strategies (combined into one batch by :func:`lexcoder.active.batches.choose_batch`):

- *random*: the baseline every other strategy has to beat;
- *uncertainty* (:func:`uncertainty_scores`, :func:`margin_scores`): texts the model cannot decide, rare
  labels favoured (:func:`rarity_weights`);
- *rare* (:func:`expected_positive_order`): the likeliest positives of the rare labels, taken label by
  label, because a label with 20 coded positives learns more from 20 more positives than from anything else;
- *diversity* (:func:`cluster_round_robin`): one text per TF-IDF KMeans cluster in turn, least-covered
  clusters first;
- *cold start* (:func:`cluster_stratified`): a cluster-stratified random seed batch when there is no model;
- *keyword* (:func:`keyword_mask`): candidates for a rare label found by a regular expression.

:func:`take_diverse` makes every strategy batch-aware: it walks a ranking and skips texts that are
near-duplicates (cosine similarity of their TF-IDF vectors at or above a limit) of texts already taken.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import numpy as np
import scipy.sparse as sp

from ..errors import ConfigError

#: Cosine similarity (TF-IDF) from which two texts count as near-duplicates within one batch.
NEAR_DUPLICATE = 0.9


def rarity_weights(n_positive: Sequence[float]) -> np.ndarray:
    """A weight per label that favours the labels with the fewest coded positives.

    ``w_j = 1 / sqrt(1 + n_positive_j)``, scaled so the rarest label has weight 1. A label with 8 coded
    positives weighs about 3.5 times one with 110; one with 0 positives weighs most. The square root keeps
    frequent labels in play (a pure ``1 / n`` would hand every batch to the rarest label).

    Parameters
    ----------
    n_positive : array-like of shape (n_labels,), non-negative counts

    Returns
    -------
    np.ndarray of shape (n_labels,), values in (0, 1]
    """
    counts = np.asarray(n_positive, dtype=float)
    if counts.ndim != 1 or (counts < 0).any() or not np.isfinite(counts).all():
        raise ValueError("n_positive must be a 1-D array of non-negative counts.")
    w = 1.0 / np.sqrt(1.0 + counts)
    return w / w.max() if len(w) else w


def uncertainty_scores(probs: np.ndarray, thresholds: np.ndarray, *,
                       weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """How undecided the model is about each text, per label, and the label that makes it so.

    A label's closeness to its decision threshold ``t``:
    ``u = 1 - |p - t| / max(t, 1 - t)``: 1 at the threshold, 0 at the far end of [0, 1]. Measuring from the
    tuned threshold (not 0.5) matters for rare labels, whose thresholds are often far below 0.5. The text's
    score is the largest ``weights_j * u_j`` over labels.

    Parameters
    ----------
    probs : (n_texts, n_labels) probabilities
    thresholds : (n_labels,) decision thresholds in (0, 1)
    weights : (n_labels,) label weights (e.g. :func:`rarity_weights`); default: all 1

    Returns
    -------
    (scores, label) : two arrays of shape (n_texts,): the score in [0, 1] and the position of the label
    that gave it
    """
    P = _check_probs(probs)
    t = np.clip(np.asarray(thresholds, dtype=float), 1e-6, 1 - 1e-6)
    if t.shape != (P.shape[1],):
        raise ValueError(f"thresholds must have shape ({P.shape[1]},), got {t.shape}.")
    closeness = 1.0 - np.abs(P - t) / np.maximum(t, 1.0 - t)
    weighted = closeness * _weights(weights, P.shape[1])
    label = weighted.argmax(axis=1)
    return weighted[np.arange(len(P)), label], label


def margin_scores(class_probs: np.ndarray) -> np.ndarray:
    """Uncertainty of a categorical prediction: ``1 - (p_first - p_second)``, the margin between the two
    most probable classes (1: a tie, 0: certain).

    Parameters
    ----------
    class_probs : (n_texts, n_classes) probabilities, rows summing to 1, ``n_classes >= 2``

    Returns
    -------
    np.ndarray of shape (n_texts,), values in [0, 1]
    """
    P = _check_probs(class_probs)
    if P.shape[1] < 2:
        raise ValueError("class_probs needs at least two classes.")
    top2 = np.sort(P, axis=1)[:, -2:]
    return 1.0 - (top2[:, 1] - top2[:, 0])


def expected_positive_order(probs: np.ndarray, labels: Sequence[int]) -> Iterable[tuple[int, int]]:
    """The likeliest positives of ``labels``, taken in turn: ``(row, label)`` pairs.

    Round robin over ``labels`` (give the rarest first): the first yield is the most probable text of
    ``labels[0]``, then of ``labels[1]``, ..., then each label's second most probable text, and so on. A row
    already yielded for one label is not yielded again. Every rare label thereby gets its own candidates
    instead of the most frequent of them taking the whole quota.

    Parameters
    ----------
    probs : (n_texts, n_labels) probabilities
    labels : positions (columns of ``probs``) of the labels to sample for

    Yields
    ------
    (row, label) : position of the text and of the label it is a likely positive of
    """
    P = _check_probs(probs)
    orders = [np.argsort(-P[:, j], kind="stable") for j in labels]
    seen: set[int] = set()
    for rank in range(len(P)):
        for j, order in zip(labels, orders):
            row = int(order[rank])
            if row not in seen:
                seen.add(row)
                yield row, int(j)


def cluster_round_robin(clusters: np.ndarray, *, covered: np.ndarray | None = None,
                        seed: int = 0) -> np.ndarray:
    """All rows ordered for diversity: one random text per cluster in turn, least-covered clusters first.

    Clusters are visited in the order of how many already-coded texts they hold (``covered``, fewest
    first), ties broken by size (largest first); within a cluster the rows come in a seeded random order.

    Parameters
    ----------
    clusters : (n_texts,) cluster of each pool text (integers ``0 .. k-1``)
    covered : (k,) coded texts per cluster; default: none
    seed : seeds the order within clusters

    Returns
    -------
    np.ndarray : a permutation of ``range(n_texts)``
    """
    clusters = np.asarray(clusters, dtype=int)
    k = int(clusters.max()) + 1 if len(clusters) else 0
    covered = np.zeros(k) if covered is None else np.asarray(covered, dtype=float)
    sizes = np.bincount(clusters, minlength=k)
    visit = sorted(range(k), key=lambda c: (covered[c], -sizes[c], c))
    rng = np.random.default_rng(seed)
    members = {c: list(rng.permutation(np.flatnonzero(clusters == c))) for c in visit}
    order = []
    while len(order) < len(clusters):
        for c in visit:
            if members[c]:
                order.append(members[c].pop(0))
    return np.asarray(order, dtype=int)


def cluster_stratified(clusters: np.ndarray, n: int, *, seed: int = 0) -> np.ndarray:
    """A cluster-stratified random order for a cold start: the first ``n`` rows spread over the clusters
    in proportion to their sizes (largest remainder; every cluster gets one when ``n`` >= the number of
    clusters), each cluster's rows drawn at random; the remaining rows follow in random order.

    Parameters
    ----------
    clusters : (n_texts,) cluster of each pool text
    n : how many rows the stratified part holds (at most ``n_texts``)
    seed : seeds every random choice

    Returns
    -------
    np.ndarray : a permutation of ``range(n_texts)`` whose first ``n`` rows are the stratified sample
    """
    clusters = np.asarray(clusters, dtype=int)
    n = min(n, len(clusters))
    rng = np.random.default_rng(seed)
    sizes = np.bincount(clusters)
    quota = allocate(sizes, n, at_least_one=True)
    first = [rng.choice(np.flatnonzero(clusters == c), size=q, replace=False) for c, q in enumerate(quota) if q]
    chosen = np.concatenate(first) if first else np.zeros(0, dtype=int)
    chosen = rng.permutation(chosen)
    rest = rng.permutation(np.setdiff1d(np.arange(len(clusters)), chosen))
    return np.concatenate([chosen, rest]).astype(int)


def allocate(sizes: np.ndarray, n: int, *, at_least_one: bool = False) -> np.ndarray:
    """Split ``n`` over groups in proportion to ``sizes`` (largest remainder), never above a group's size.

    With ``at_least_one`` (and ``n`` at least the number of non-empty groups), every non-empty group first
    gets one and the rest is split in proportion to what each group has left.

    Returns
    -------
    np.ndarray of int, summing to ``min(n, sizes.sum())``
    """
    sizes = np.asarray(sizes, dtype=int)
    n = min(int(n), int(sizes.sum()))
    quota = np.zeros(len(sizes), dtype=int)
    if at_least_one and n >= np.count_nonzero(sizes):
        quota = np.minimum(sizes, 1)
    left = n - int(quota.sum())
    if left <= 0:
        return quota
    room = sizes - quota
    ideal = left * room / room.sum()  # never above a group's room, since left <= room.sum()
    add = np.floor(ideal).astype(int)
    fraction = np.where(room > add, ideal - add, -1.0)
    add[np.argsort(-fraction, kind="stable")[: left - int(add.sum())]] += 1
    return quota + add


def keyword_mask(texts: Sequence[str], pattern: str) -> np.ndarray:
    """Which texts match the regular expression ``pattern`` (case-insensitive, anywhere in the text).

    Raises
    ------
    ConfigError
        When ``pattern`` is not a valid regular expression (the message says where it breaks).
    """
    try:
        rx = re.compile(pattern, re.IGNORECASE)
    except re.error as err:
        raise ConfigError(f"The keyword pattern {pattern!r} is not a valid regular expression ({err}). Escape "
                          r"special characters such as ( ) [ ] . * with a backslash, e.g. 'arbitrat\w*'.") from None
    return np.fromiter((rx.search(t or "") is not None for t in texts), dtype=bool, count=len(texts))


def text_vectors(texts: Sequence[str]) -> sp.csr_matrix:
    """L2-normalised TF-IDF rows of ``texts`` (words, sublinear term frequency): their dot products are
    cosine similarities. Texts without a known word get a zero row (similar to nothing)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    vectorizer = TfidfVectorizer(sublinear_tf=True, min_df=2 if len(texts) > 50 else 1, max_features=50_000)
    try:
        return vectorizer.fit_transform(texts).tocsr()
    except ValueError:  # no text has a word (codes, digits only): nothing is similar
        return sp.csr_matrix((len(texts), 1))


def kmeans_clusters(X: sp.csr_matrix, n_clusters: int, *, seed: int = 0,
                    also: sp.csr_matrix | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Seeded KMeans clusters of the rows of ``X`` (at most ``n_clusters``, at most one per two rows), and
    the cluster of each row of ``also`` (e.g. the texts already coded), or None.

    Large pools (over 20,000 texts) use mini-batch KMeans, which gives nearly the same clusters in a
    fraction of the time.
    """
    from sklearn.cluster import KMeans, MiniBatchKMeans
    k = max(1, min(n_clusters, X.shape[0] // 2))
    if k == 1 or X.nnz == 0:
        return np.zeros(X.shape[0], dtype=int), None if also is None else np.zeros(also.shape[0], dtype=int)
    algo = (MiniBatchKMeans(n_clusters=k, random_state=seed, n_init=3, batch_size=2048)
            if X.shape[0] > 20_000 else KMeans(n_clusters=k, n_init=1, random_state=seed))
    clusters = algo.fit_predict(X)
    return clusters, None if also is None or also.shape[0] == 0 else algo.predict(also)


def take_diverse(order: Iterable[int], X: sp.csr_matrix, n: int, *, taken: Sequence[int] = (),
                 max_similarity: float = NEAR_DUPLICATE, texts: Sequence[str] | None = None) -> list[int]:
    """The first ``n`` rows of ``order`` that are no near-duplicate of one another or of ``taken``.

    A row is skipped when its cosine similarity (rows of ``X``) to a row already taken is at least
    ``max_similarity``, or its text (when ``texts`` is given) equals one already taken. This is what keeps a
    batch from holding 200 copies of the same boilerplate sentence. (:class:`NearDuplicateGuard` does the
    same across several calls.)

    Parameters
    ----------
    order : candidate rows, best first (rows in ``taken`` are skipped)
    X : (n_texts, n_features) L2-normalised rows (:func:`text_vectors`)
    n : how many rows to return
    taken : rows already in the batch
    max_similarity : similarity from which a row counts as a near-duplicate; above 1 turns the check off
    texts : the pool's texts, to catch exact duplicates whose vectors are zero

    Returns
    -------
    list of int : at most ``n`` rows, in the order they were found
    """
    return NearDuplicateGuard(X, max_similarity=max_similarity, texts=texts, taken=taken).take(order, n)


class NearDuplicateGuard:
    """The rows of a batch being built, refusing near-duplicates of them (see :func:`take_diverse`).

    Keeps, for every pool row, its highest similarity to a row taken so far, so each candidate costs one
    lookup and each taken row one sparse product.
    """

    def __init__(self, X: sp.csr_matrix, *, max_similarity: float = NEAR_DUPLICATE,
                 texts: Sequence[str] | None = None, taken: Sequence[int] = ()) -> None:
        self.X, self.max_similarity, self.texts = X, max_similarity, texts
        self.check = max_similarity <= 1.0
        self.nearest = _max_similarity(X, [int(r) for r in taken]) if self.check else None
        self.rows: list[int] = [int(r) for r in taken]
        self.blocked = set(self.rows)
        self.seen_texts = {texts[r] for r in self.rows} if texts is not None else set()

    def admits(self, row: int) -> bool:
        """Whether ``row`` is not in the batch and no near-duplicate of a row in it."""
        if row in self.blocked or (self.texts is not None and self.texts[row] in self.seen_texts):
            return False
        return not (self.check and self.nearest[row] >= self.max_similarity)

    def add(self, row: int) -> None:
        """Put ``row`` into the batch (unchecked: random draws enter as drawn)."""
        row = int(row)
        self.rows.append(row)
        self.blocked.add(row)
        if self.texts is not None:
            self.seen_texts.add(self.texts[row])
        if self.check:
            np.maximum(self.nearest, _max_similarity(self.X, [row]), out=self.nearest)

    def take(self, order: Iterable[int], n: int) -> list[int]:
        """The first ``n`` admitted rows of ``order``, each added to the batch."""
        chosen: list[int] = []
        for row in order:
            if len(chosen) >= n:
                break
            if self.admits(int(row)):
                self.add(int(row))
                chosen.append(int(row))
        return chosen


def _max_similarity(X: sp.csr_matrix, rows: list[int], chunk: int = 256) -> np.ndarray:
    """Per row of ``X``, its largest cosine similarity to the rows ``rows`` (0 when ``rows`` is empty)."""
    best = np.zeros(X.shape[0])
    for start in range(0, len(rows), chunk):
        sims = X @ X[rows[start:start + chunk]].T
        np.maximum(best, sims.max(axis=1).toarray().ravel(), out=best)
    return best


def _check_probs(probs: np.ndarray) -> np.ndarray:
    P = np.asarray(probs, dtype=float)
    if P.ndim != 2:
        raise ValueError(f"probabilities must be a 2-D array (n_texts, n_columns), got shape {P.shape}.")
    if P.size and (np.isnan(P).any() or P.min() < 0 or P.max() > 1):
        raise ValueError("probabilities must lie in [0, 1] (no NaN).")
    return P


def _weights(weights: np.ndarray | None, n_labels: int) -> np.ndarray:
    if weights is None:
        return np.ones(n_labels)
    w = np.asarray(weights, dtype=float)
    if w.shape != (n_labels,):
        raise ValueError(f"weights must have shape ({n_labels},), got {w.shape}.")
    return w
