"""One batch of texts to code next: the strategies of :mod:`~lexcoder.active.strategies` combined.

:func:`choose_batch` splits the batch size ``n`` over the strategies of a *mix* (:func:`resolve_mix`), lets
each strategy pick its share in turn from what is left of the pool, and skips near-duplicates of texts
already in the batch whichever strategy took them. Every row gets the strategy that chose it and a reason a
coder can read ("undecided on arbitration: p = 0.31, threshold 0.35, 19 coded positives").

The random share is drawn first, from the whole pool, with no other filter: those rows are a simple random
sample of the pool (their ``inclusion_probability`` is the share's size over the pool's), which keeps an
honest baseline inside every batch. No other strategy's rows have an inclusion probability: they were
chosen for what the model thinks of them, so they are never a random sample (see
:mod:`lexcoder.active.provenance`).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..errors import ConfigError
from .strategies import (NEAR_DUPLICATE, cluster_round_robin, cluster_stratified, expected_positive_order,
                         NearDuplicateGuard, keyword_mask, kmeans_clusters, margin_scores, rarity_weights, text_vectors,
                         uncertainty_scores)

#: The strategies a mix can name.
STRATEGIES = ("random", "keyword", "rare", "uncertainty", "diversity", "cold_start")
#: The mix of ``strategy="auto"`` once a model exists (shares of the batch).
DEFAULT_MIX = {"uncertainty": 0.4, "rare": 0.3, "diversity": 0.2, "random": 0.1}
#: Share of the batch that goes to keyword candidates when keywords are given (and the mix names none).
KEYWORD_SHARE = 0.25
#: Labels (and classes) with fewer coded positives than this are *rare*: the ``rare`` strategy samples
#: their likeliest positives (the labels that break the models here have fewer than 100 positives).
RARE_BELOW = 100
#: With fewer coded texts than this, ``strategy="auto"`` starts cold: a cluster-stratified random batch.
COLD_START_BELOW = 50
#: The columns of :func:`choose_batch`'s result.
BATCH_COLUMNS = ["row", "strategy", "reason", "score", "inclusion_probability"]


@dataclass(frozen=True)
class Target:
    """One thing the model predicts for every pool text: a 0/1 label, or one class of a categorical
    variable (``name`` = ``"variable=class"``)."""

    name: str
    probs: np.ndarray
    count: int
    threshold: float | None = None
    variable: str | None = None


@dataclass
class _Pool:
    """What every strategy may look at: the pool's texts and vectors, the model's targets, the batch so far."""

    texts: list[str]
    X: object
    coded_X: object
    targets: list[Target]
    seed: int
    max_similarity: float
    rare_below: int
    keywords: dict[str, str]
    guard: NearDuplicateGuard
    variables: dict[str, list[Target]] = field(default_factory=dict)

    def take(self, order, quota: int) -> list[int]:
        return self.guard.take(order, quota)


def choose_batch(texts: Sequence[str], n: int, *, probs: np.ndarray | None = None,
                 thresholds: Sequence[float] | None = None, labels: Sequence[str] = (),
                 n_positive: Sequence[int] | None = None,
                 class_probs: Mapping[str, tuple[Sequence[str], np.ndarray]] | None = None,
                 class_counts: Mapping[str, Mapping[str, int]] | None = None, coded_texts: Sequence[str] = (),
                 strategy: str | Mapping[str, float] = "auto", keywords: Mapping[str, str] | None = None,
                 rare_below: int = RARE_BELOW, seed: int = 0, max_similarity: float = NEAR_DUPLICATE,
                 vectors: tuple[sp.csr_matrix, sp.csr_matrix] | None = None) -> pd.DataFrame:
    """Choose ``n`` texts of the pool to code next, each with its strategy and reason.

    Parameters
    ----------
    texts : the pool: uncoded texts (cleaned as the model saw them)
    n : batch size (at most the pool's size)
    probs : (n_texts, n_labels) the model's probabilities of the 0/1 ``labels``; None without a model
    thresholds : (n_labels,) the run's decision thresholds
    labels : the 0/1 labels' names, in the order of the columns of ``probs``
    n_positive : (n_labels,) coded texts that are 1 for each label so far
    class_probs : per categorical variable, ``(classes, probabilities (n_texts, n_classes))``
    class_counts : per categorical variable, coded texts per class so far
    coded_texts : the texts coded so far (clusters they fill count as covered for *diversity*)
    strategy : ``"auto"``, one of :data:`STRATEGIES`, or a mix ``{strategy: share}`` (:func:`resolve_mix`)
    keywords : ``{label: regular expression}``: candidates for rare labels (the ``keyword`` share)
    rare_below : labels and classes with fewer coded positives are rare (:data:`RARE_BELOW`)
    seed : seeds every random choice (the same inputs and seed give the same batch)
    max_similarity : TF-IDF cosine similarity from which two texts are near-duplicates (at most one of
        them enters the batch)
    vectors : L2-normalised TF-IDF rows of ``texts`` and of ``coded_texts`` (one vocabulary), when the caller
        has them already (the simulation benchmark); default: :func:`~lexcoder.active.strategies.text_vectors`
        of both

    Returns
    -------
    pd.DataFrame with :data:`BATCH_COLUMNS`: ``row`` (position in ``texts``), ``strategy``, ``reason``,
    ``score`` (the strategy's score, NaN where it has none) and ``inclusion_probability`` (random rows
    only; NaN elsewhere). Fewer than ``n`` rows only when the pool runs out of texts that are not
    near-duplicates.

    Raises
    ------
    ConfigError
        For an unknown strategy, a strategy that needs the model's predictions without them, or a keyword
        for an unknown label.
    """
    texts = [str(t) for t in texts]
    if n < 1:
        raise ConfigError(f"The batch size must be at least 1 (got {n}).")
    n = min(n, len(texts))
    targets = _targets(len(texts), probs, thresholds, labels, n_positive, class_probs, class_counts)
    keywords = dict(keywords or {})
    unknown = sorted(set(keywords) - {t.name for t in targets} - set(labels))
    if unknown:
        raise ConfigError(f"Keywords are given for {unknown}, which the run does not code; its labels are "
                          f"{list(labels)}.")
    mix = resolve_mix(strategy, has_model=bool(targets), n_coded=len(coded_texts), keywords=bool(keywords))
    if vectors is None:
        X = text_vectors(texts + list(coded_texts))
        vectors = X[:len(texts)], X[len(texts):]
    guard = NearDuplicateGuard(vectors[0], max_similarity=max_similarity, texts=texts)
    pool = _Pool(texts, vectors[0], vectors[1], targets, seed, max_similarity, rare_below, keywords, guard)
    for t in targets:
        if t.variable:
            pool.variables.setdefault(t.variable, []).append(t)
    rows: list[dict] = []
    quotas = dict(zip(mix, _largest_remainder(list(mix.values()), n)))
    for name in sorted(mix, key=STRATEGIES.index):
        if quotas[name]:
            rows += _PICKERS[name](pool, quotas[name])
    if len(rows) < n:  # a strategy ran short (few keyword matches, near-duplicates): fill up for diversity
        rows += _pick_diversity(pool, n - len(rows), why="filled up: ")
    out = pd.DataFrame(rows, columns=BATCH_COLUMNS)
    return out.astype({"row": int, "score": float, "inclusion_probability": float})


def resolve_mix(strategy: str | Mapping[str, float], *, has_model: bool, n_coded: int,
                keywords: bool = False) -> dict[str, float]:
    """The shares of the batch per strategy, normalised to sum to 1.

    ``"auto"``: a cold start (:data:`COLD_START_BELOW` coded texts or none, or no model), otherwise
    :data:`DEFAULT_MIX`; given keywords add a :data:`KEYWORD_SHARE` of keyword candidates to a mix that
    names none. A strategy name alone is the whole batch; a mapping gives the shares.

    Raises
    ------
    ConfigError
        For an unknown strategy name, a negative or all-zero share, or a model-based strategy
        (``uncertainty``, ``rare``) without the model's predictions.
    """
    if isinstance(strategy, str):
        if strategy == "auto":
            cold = not has_model or n_coded < COLD_START_BELOW
            mix = {"cold_start": 1.0} if cold else dict(DEFAULT_MIX)
        else:
            mix = {strategy: 1.0}
    else:
        mix = {str(k): float(v) for k, v in strategy.items()}
    unknown = [k for k in mix if k not in STRATEGIES]
    if unknown:
        raise ConfigError(f"Unknown strategy {unknown[0]!r}; choose auto or one of {', '.join(STRATEGIES)} (or a "
                          "mix such as uncertainty=0.5,rare=0.3,random=0.2).")
    if any(v < 0 for v in mix.values()) or sum(mix.values()) <= 0:
        raise ConfigError(f"The shares of a strategy mix must be non-negative and not all 0 (got {mix}).")
    needs_model = [k for k in ("uncertainty", "rare") if mix.get(k)]
    if needs_model and not has_model:
        raise ConfigError(f"The strategy {needs_model[0]!r} needs the model's predictions; without a model use "
                          "cold_start, diversity, keyword or random.")
    if keywords and "keyword" not in mix:
        mix = {k: v * (1 - KEYWORD_SHARE) / sum(mix.values()) for k, v in mix.items()} | {"keyword": KEYWORD_SHARE}
    total = sum(mix.values())
    return {k: v / total for k, v in mix.items() if v > 0}


def parse_mix(text: str) -> str | dict[str, float]:
    """``"auto"``, ``"rare"`` or ``"uncertainty=0.5,rare=0.3,random=0.2"`` (the command line's ``--strategy``)
    as :func:`choose_batch` takes it."""
    if "=" not in text:
        return text.strip()
    mix = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, share = part.partition("=")
        try:
            mix[name.strip()] = float(share)
        except ValueError:
            raise ConfigError(f"--strategy {text!r}: {part!r} is not name=share with a number as share, e.g. "
                              "uncertainty=0.5,rare=0.5.") from None
    return mix


# -- the strategies' pickers: each takes its quota from the pool and says why -------------------------------
def _pick_random(pool: _Pool, quota: int) -> list[dict]:
    """A simple random sample of the whole pool (no near-duplicate filter: that would bias it)."""
    rng = np.random.default_rng(pool.seed)
    size = len(pool.texts)
    free = np.setdiff1d(np.arange(size), pool.guard.rows)
    rows = rng.choice(free, size=min(quota, len(free)), replace=False)
    for r in rows:
        pool.guard.add(r)
    chance = len(rows) / len(free)
    return [_row(r, "random", f"random draw: {len(rows)} of {len(free):,} uncoded texts (the baseline)",
                 inclusion=chance) for r in rows]


def _pick_keyword(pool: _Pool, quota: int) -> list[dict]:
    """Texts matching each label's keyword, labels in turn; the model's likeliest first (if it has one)."""
    by_name = {t.name: t for t in pool.targets}
    orders = []
    for label, pattern in pool.keywords.items():
        hits = np.flatnonzero(keyword_mask(pool.texts, pattern))
        target = by_name.get(label)
        if target is not None:
            hits = hits[np.argsort(-target.probs[hits], kind="stable")]
        else:
            hits = np.random.default_rng(pool.seed).permutation(hits)
        orders.append((label, pattern, target, hits))
    out: list[dict] = []
    for rank in range(max((len(h) for *_, h in orders), default=0)):
        for label, pattern, target, hits in orders:
            if len(out) < quota and rank < len(hits) and pool.take([hits[rank]], 1):
                p = f", p = {target.probs[hits[rank]]:.2f}" if target is not None else ""
                out.append(_row(hits[rank], "keyword", f"keyword for {label}: matches {pattern!r}{p}",
                                score=np.nan if target is None else target.probs[hits[rank]]))
        if len(out) >= quota:
            break
    return out


def _pick_rare(pool: _Pool, quota: int) -> list[dict]:
    """The likeliest positives of the rare labels and classes, rarest first, in turn."""
    rare = sorted((t for t in pool.targets if t.count < pool.rare_below), key=lambda t: (t.count, t.name))
    if not rare:  # nothing is rare any more: every target, fewest positives first
        rare = sorted(pool.targets, key=lambda t: (t.count, t.name))
    P = np.column_stack([t.probs for t in rare])
    out: list[dict] = []
    for row, j in expected_positive_order(P, list(range(len(rare)))):
        if len(out) >= quota:
            break
        if pool.take([row], 1):
            t = rare[j]
            out.append(_row(row, "rare", f"likely {t.name}: p = {t.probs[row]:.2f} ({t.count} coded "
                                         f"{'positive' if t.count == 1 else 'positives'})", score=t.probs[row]))
    return out


def _pick_uncertainty(pool: _Pool, quota: int) -> list[dict]:
    """The texts the model is least sure about, rare labels (and classes) weighted up."""
    weights = dict(zip((t.name for t in pool.targets), rarity_weights([t.count for t in pool.targets])))
    scores, reasons = [], []
    labels = [t for t in pool.targets if t.variable is None]
    if labels:
        s, j = uncertainty_scores(np.column_stack([t.probs for t in labels]), [t.threshold for t in labels],
                                  weights=np.array([weights[t.name] for t in labels]))
        scores.append(s)
        reasons.append(lambda r, j=j: _label_reason(labels[j[r]], r))
    for variable, classes in pool.variables.items():
        P = np.column_stack([t.probs for t in classes])
        top2 = np.argsort(-P, axis=1)[:, :2]
        w = np.array([weights[t.name] for t in classes])
        scores.append(margin_scores(P) * w[top2].max(axis=1))  # the rarer of the two undecided classes
        reasons.append(lambda r, P=P, top2=top2, classes=classes, v=variable: _class_reason(v, classes, P, top2, r))
    S = np.column_stack(scores)
    best, source = S.max(axis=1), S.argmax(axis=1)
    rows = pool.take(np.argsort(-best, kind="stable"), quota)
    return [_row(r, "uncertainty", reasons[source[r]](r), score=best[r]) for r in rows]


def _pick_diversity(pool: _Pool, quota: int, why: str = "") -> list[dict]:
    """One text per TF-IDF cluster in turn, the clusters with the fewest coded texts first."""
    clusters, coded = kmeans_clusters(pool.X, _n_clusters(quota), seed=pool.seed, also=pool.coded_X)
    k = int(clusters.max()) + 1
    covered = np.bincount(coded, minlength=k) if coded is not None else np.zeros(k)
    sizes = np.bincount(clusters, minlength=k)
    rows = pool.take(cluster_round_robin(clusters, covered=covered, seed=pool.seed), quota)
    return [_row(r, "diversity", f"{why}diversity: topic cluster {clusters[r] + 1} of {k} "
                                 f"({sizes[clusters[r]]:,} uncoded, {int(covered[clusters[r]]):,} coded texts)")
            for r in rows]


def _pick_cold_start(pool: _Pool, quota: int) -> list[dict]:
    """A cluster-stratified random sample: every topic cluster in proportion to its size."""
    clusters, _ = kmeans_clusters(pool.X, _n_clusters(quota), seed=pool.seed)
    k = int(clusters.max()) + 1
    rows = pool.take(cluster_stratified(clusters, quota, seed=pool.seed), quota)
    return [_row(r, "cold_start", f"cold start: topic cluster {clusters[r] + 1} of {k}, sampled in proportion "
                                  "to the cluster's size") for r in rows]


_PICKERS = {"random": _pick_random, "keyword": _pick_keyword, "rare": _pick_rare,
            "uncertainty": _pick_uncertainty, "diversity": _pick_diversity, "cold_start": _pick_cold_start}


# -- helpers ---------------------------------------------------------------------------------------------
def _targets(size: int, probs, thresholds, labels, n_positive, class_probs, class_counts) -> list[Target]:
    """The model's outputs as one :class:`Target` per label and per class, shapes checked."""
    targets = []
    if probs is not None and len(labels):
        P = np.asarray(probs, dtype=float)
        if P.shape != (size, len(labels)):
            raise ValueError(f"probs must have shape ({size}, {len(labels)}), got {P.shape}.")
        t = np.full(len(labels), 0.5) if thresholds is None else np.asarray(thresholds, dtype=float)
        counts = np.zeros(len(labels), dtype=int) if n_positive is None else np.asarray(n_positive, dtype=int)
        targets += [Target(lab, P[:, j], int(counts[j]), float(t[j])) for j, lab in enumerate(labels)]
    for variable, (classes, P) in (class_probs or {}).items():
        P = np.asarray(P, dtype=float)
        if P.shape != (size, len(classes)):
            raise ValueError(f"class_probs[{variable!r}] must have shape ({size}, {len(classes)}), got {P.shape}.")
        counts = (class_counts or {}).get(variable, {})
        targets += [Target(f"{variable}={c}", P[:, j], int(counts.get(str(c), 0)), variable=variable)
                    for j, c in enumerate(classes)]
    return targets


def _largest_remainder(shares: list[float], n: int) -> list[int]:
    """``n`` split by ``shares`` (summing to 1) into whole numbers, largest remainders rounded up."""
    raw = np.asarray(shares) * n
    out = np.floor(raw).astype(int)
    for i in np.argsort(-(raw - out), kind="stable")[: n - out.sum()]:
        out[i] += 1
    return out.tolist()


def _n_clusters(quota: int) -> int:
    """Clusters for a share of ``quota`` texts: about one text per cluster, between 10 and 50."""
    return int(np.clip(quota, 10, 50))


def _row(row: int, strategy: str, reason: str, *, score: float = np.nan, inclusion: float = np.nan) -> dict:
    return {"row": int(row), "strategy": strategy, "reason": reason, "score": float(score),
            "inclusion_probability": float(inclusion)}


def _label_reason(t: Target, row: int) -> str:
    positives = "positive" if t.count == 1 else "positives"
    return f"undecided on {t.name}: p = {t.probs[row]:.2f}, threshold {t.threshold:.2f} ({t.count} coded {positives})"


def _class_reason(variable: str, classes: list[Target], P: np.ndarray, top2: np.ndarray, row: int) -> str:
    a, b = (classes[i] for i in top2[row])
    name = lambda t: t.name.split("=", 1)[1]  # noqa: E731
    return (f"undecided on {variable}: {name(a)} {P[row, top2[row, 0]]:.2f} vs {name(b)} "
            f"{P[row, top2[row, 1]]:.2f} ({a.count} and {b.count} coded)")
