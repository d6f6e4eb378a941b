"""Why a row is in the review queue: the evidence behind the model's view, and the nearest texts coded the
other way.

Two columns are added to the queue (:func:`explain_queue`), computed for the queue rows only:

- ``evidence``: what pushed the cross-fitting model toward its prediction.

  * TF-IDF (``kind = "tfidf"``, and the TF-IDF half of ``"blend"``): the n-grams *present in the text*
    with the largest contribution (coefficient × the text's TF-IDF value) toward the model's prediction,
    e.g. ``“unilaterally” +1.84, “at any time” +1.21``. For a 0/1 label the numbers are contributions to
    the label's log-odds (positive: toward 1, negative: toward 0; the direction of the model's prediction,
    ``p >= 0.5`` or not); for a categorical variable, to the log-odds of the suggested class against the
    given one (all positive). Word n-grams only (character n-grams and context blocks are left out).
  * Encoders (``"encoder"``, ``"blend"``): the most similar texts the fold's model learnt from that carry
    the code the model predicts and are *confidently coded*: their out-of-fold probability of that code is
    at least its mean over all rows carrying it (confident learning's per-class threshold):
    ``similar texts coded 1: id 55 (0.91) “…”``. Similarity is the cosine of
    the pretrained encoder's mean-pooled embeddings (the encoder the fold models were fine-tuned from,
    which never saw a code).
  * Other families (LLMs): no evidence; ``nearest_other`` as for all.

- ``nearest_other``: the texts nearest to the row's text (cosine of word 1-2-gram TF-IDF vectors over the
  whole audited table: no code enters them) among the rows coded the other way for that label — for a
  row coded 0 the nearest rows coded 1 and vice versa; for a categorical variable the nearest rows given
  the suggested class — as ``id 412 (0.78) “…” | id 97 (0.64) “…”``. A conflicting duplicate shows its
  copy here with similarity 1.00.

**No in-sample leakage.** The n-grams come from the TF-IDF model of the row's own cross-fitting fold,
fitted again on exactly that fold's training rows (for ``kind = "tfidf"`` it is the very model that
scored the row: the fit is deterministic; for ``"blend"`` it is the TF-IDF model the blend averages in),
so the row's code never shaped its evidence. The similar texts are drawn from the same training rows.
Refitting costs one TF-IDF fit per fold that holds queue rows (only for the labels and variables queued
there), a second or so each on 10,000 sentences.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.feature_extraction.text import TfidfVectorizer

from ..progress import track
from .crossfit import Inputs, family_settings, fit_fold_class_model, fit_fold_model, tfidf_settings

log = logging.getLogger(__name__)

EXPLANATION_COLUMNS = ["evidence", "nearest_other"]
SNIPPET = 60  # characters of a text shown in an explanation


@dataclass
class _Target:
    """One queue row to explain: table row ``row`` of fold ``fold``, for ``label`` (a 0/1 label's column
    ``column`` or a variable); ``given`` its code, ``other`` the code the other way (the suggested class),
    ``predicted`` the code the model predicts."""

    index: Any
    row: int
    fold: int
    label: str
    column: int | None
    given: Any
    other: Any
    predicted: Any


def explain_queue(queue: pd.DataFrame, df: pd.DataFrame, inputs: Inputs, folds: np.ndarray, *,
                  labels: Sequence[str], P: np.ndarray,
                  variables: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None, kind: str = "tfidf",
                  name: str | None = None, params: dict[str, Any] | None = None, n_terms: int = 3,
                  n_texts: int = 2) -> pd.DataFrame:
    """The queue with its ``evidence`` and ``nearest_other`` columns filled (added after ``reason`` if absent;
    see the module docstring).

    Parameters
    ----------
    queue : the review queue (:func:`lexcoder.audit.queue.build_queue`): ``id``, ``label``, and for
        categorical variables ``suggested_value``
    df : the audited table (``id``, ``text``, label and class columns), in the order of ``P`` and ``folds``
    inputs : (n,) the cross-fitting models' inputs (:func:`lexcoder.context.model_inputs` of ``df``)
    folds : (n,) the cross-fitting fold of each row (-1: held out, scored by a model of all other rows)
    labels : the 0/1 label columns, in the order of ``P``'s columns
    P : (n, n_labels) out-of-fold probabilities
    variables : ``{variable: (classes, (n, k) out-of-fold probabilities)}``
    kind, name, params : the cross-fitting model (as :func:`lexcoder.audit.crossfit.out_of_fold_proba`)
    n_terms, n_texts : n-grams and texts listed per row

    Returns
    -------
    A copy of ``queue`` with the two columns (empty strings where there is nothing to show)
    """
    out = queue.copy()
    at = list(out.columns).index("reason") + 1 if "reason" in out else len(out.columns)
    for col in reversed(EXPLANATION_COLUMNS):  # build_queue makes them (empty); another table gets them
        if col not in out:
            out.insert(at, col, "")
    if not len(out):
        return out
    t0 = time.perf_counter()
    targets = _targets(out, df, np.asarray(folds), list(labels), P, dict(variables or {}))
    evidence = {t.index: [] for t in targets}
    spec = tfidf_settings(kind, name, params)
    if spec is not None:
        for index, text in _term_evidence(targets, df, inputs, folds, list(labels), spec, n_terms).items():
            evidence[index].append(text)
    family, encoder, settings = family_settings(kind, name, params)
    if family == "encoder":
        for index, text in _similar_evidence(targets, df, folds, list(labels), P, dict(variables or {}),
                                             encoder, int(settings.get("max_length", 128)), n_texts).items():
            evidence[index].append(text)
    out["evidence"] = ["; ".join(e for e in evidence.get(i, []) if e) for i in out.index]
    nearest = _nearest_other(targets, df, list(labels), n_texts)
    out["nearest_other"] = [nearest.get(i, "") for i in out.index]
    log.info("Explained %d queue rows in %.1f s.", len(targets), time.perf_counter() - t0)
    return out


def _targets(queue: pd.DataFrame, df: pd.DataFrame, folds: np.ndarray, labels: list[str], P: np.ndarray,
             variables: dict[str, tuple[np.ndarray, np.ndarray]]) -> list[_Target]:
    """The queue rows as :class:`_Target` records (rows whose label or id is unknown are skipped)."""
    position = pd.Series(np.arange(len(df)), index=df["id"].astype(str))
    column = {lab: j for j, lab in enumerate(labels)}
    out = []
    for index, rec in queue.iterrows():
        r = position.get(str(rec["id"]))
        if r is None:
            continue
        lab = rec["label"]
        if lab in column:
            j, h = column[lab], int(df[lab].iloc[r])
            out.append(_Target(index, int(r), int(folds[r]), lab, j, h, 1 - h, int(P[r, j] >= 0.5)))
        elif lab in variables:
            given, other = str(df[lab].iloc[r]), str(rec["suggested_value"])
            out.append(_Target(index, int(r), int(folds[r]), lab, None, given, other, other))
    return out


def _train_rows(folds: np.ndarray, fold: int) -> np.ndarray:
    """The rows the model of ``fold`` trained on (held-out rows, fold -1, never train a model)."""
    return (folds != fold) & (folds >= 0)


# -- TF-IDF n-grams ---------------------------------------------------------------------------------------
def _term_evidence(targets: list[_Target], df: pd.DataFrame, inputs: Inputs, folds: np.ndarray,
                   labels: list[str], spec: dict[str, Any], n_terms: int) -> dict[Any, str]:
    """``{queue index: "“term” +1.23, ..."}`` from each row's fold TF-IDF model, refitted."""
    folds = np.asarray(folds)
    found: dict[Any, str] = {}
    for fold in track(sorted({t.fold for t in targets}), description="Explaining the flags (TF-IDF n-grams)"):
        here = [t for t in targets if t.fold == fold]
        train = _train_rows(folds, fold)
        found.update(_label_terms([t for t in here if t.column is not None], df, inputs, train, labels, spec,
                                  n_terms))
        for var in sorted({t.label for t in here if t.column is None}):
            model = fit_fold_class_model(inputs, df[var].astype(str).to_numpy(), train, kind="tfidf", name=None,
                                         params=spec)
            for t in (t for t in here if t.label == var):
                found[t.index] = _class_terms(model, df["text"].iloc[t.row], t, n_terms) if model else ""
    return found


def _label_terms(targets: list[_Target], df: pd.DataFrame, inputs: Inputs, train: np.ndarray,
                 labels: list[str], spec: dict[str, Any], n_terms: int) -> dict[Any, str]:
    """Evidence of 0/1 label rows of one fold: one TF-IDF fit for the labels queued there (a label's
    logistic regression does not depend on the other labels, so this is the fold model's)."""
    if not targets:
        return {}
    needed = sorted({t.column for t in targets})
    Y = df[[labels[j] for j in needed]].to_numpy().astype(np.int8)
    model, _ = fit_fold_model(inputs, Y, train, kind="tfidf", name=None, params=spec,
                              names=[labels[j] for j in needed])
    if model is None:
        return {t.index: "" for t in targets}
    row_of = {lab: k for k, lab in enumerate(model.label_names_)}
    found = {}
    for t in targets:
        if t.label not in row_of:  # coded one way only in this fold's training rows: no model of it
            found[t.index] = ""
            continue
        weights = _word_weights(model)[row_of[t.label]]
        sign = 1.0 if t.predicted == 1 else -1.0
        found[t.index] = _top_terms(model, df["text"].iloc[t.row], weights, sign, n_terms)
    return found


def _class_terms(model: Any, text: str, t: _Target, n_terms: int) -> str:
    """Evidence of a categorical variable's row: contributions to log p(suggested) - log p(given)."""
    classes = [str(c) for c in model.classes_]
    if t.other not in classes or t.given not in classes:
        return ""
    W = _word_weights(model)
    s, g = classes.index(t.other), classes.index(t.given)
    if W.shape[0] == len(classes):
        weights = W[s] - W[g]
    else:  # two classes: one row of weights, the log-odds of the second class
        weights = W[0] if s == 1 else -W[0]
    return _top_terms(model, text, weights, 1.0, n_terms)


def _word_weights(model: Any) -> np.ndarray:
    """The coefficients of the word n-gram block (the first block of a TF-IDF model's features)."""
    width = len(model.vectorizers_[0].vocabulary_)
    return np.asarray(model.coef_)[:, :width]


def _top_terms(model: Any, text: str, weights: np.ndarray, sign: float, n_terms: int) -> str:
    """The ``n_terms`` n-grams of ``text`` whose contribution (weight × TF-IDF value) times ``sign`` is
    largest and positive, as ``“term” +1.23, ...`` (the signed contributions)."""
    vec = model.vectorizers_[0]
    x = vec.transform([str(text)]).tocsr()
    contribution = x.data * weights[x.indices]
    order = [k for k in np.argsort(-sign * contribution, kind="stable") if sign * contribution[k] > 0][:n_terms]
    terms = _terms(vec)
    return ", ".join(f"“{terms[x.indices[k]]}” {contribution[k]:+.2f}" for k in order)


def _terms(vec: TfidfVectorizer) -> np.ndarray:
    """The vectorizer's terms by column (cached on it: the vocabulary is large)."""
    if getattr(vec, "_lexcoder_terms", None) is None:
        vec._lexcoder_terms = vec.get_feature_names_out()
    return vec._lexcoder_terms


# -- nearest texts ------------------------------------------------------------------------------------------
def _snippet(df: pd.DataFrame, row: int, similarity: float) -> str:
    text = " ".join(str(df["text"].iloc[row]).split())
    text = text if len(text) <= SNIPPET else text[:SNIPPET - 1] + "…"
    return f"id {df['id'].iloc[row]} ({similarity:.2f}) “{text}”"


def _codes(df: pd.DataFrame, t: _Target) -> np.ndarray:
    """Every row's code for the target's label or variable (ints for labels, class text for variables)."""
    column = df[t.label]
    return column.to_numpy().astype(int) if t.column is not None else column.astype(str).to_numpy()


def _nearest(similarity: np.ndarray, candidates: np.ndarray, n: int) -> np.ndarray:
    """Positions of the ``n`` most similar candidate rows (most similar first)."""
    rows = np.flatnonzero(candidates)
    return rows[np.argsort(-similarity[rows], kind="stable")[:n]]


def _nearest_other(targets: list[_Target], df: pd.DataFrame, labels: list[str], n_texts: int) -> dict[Any, str]:
    """``{queue index: "id … (0.78) “…” | …"}``: the nearest rows coded the other way (TF-IDF cosine)."""
    X = TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2)).fit_transform(df["text"].astype(str))
    found = {}
    for start in range(0, len(targets), 256):  # (256, n) similarities at a time
        chunk = targets[start:start + 256]
        S = (X[[t.row for t in chunk]] @ X.T).toarray()
        for t, sim in zip(chunk, S):
            other = _codes(df, t) == t.other
            other[t.row] = False
            found[t.index] = " | ".join(_snippet(df, r, sim[r]) for r in _nearest(sim, other, n_texts))
    return found


def _similar_evidence(targets: list[_Target], df: pd.DataFrame, folds: np.ndarray, labels: list[str],
                      P: np.ndarray, variables: dict[str, tuple[np.ndarray, np.ndarray]], encoder: str,
                      max_length: int, n_texts: int) -> dict[Any, str]:
    """``{queue index: "similar texts coded 1: …"}``: the fold's training rows coded as the model predicts,
    confidently (their out-of-fold probability of that code at least its mean over the rows coded so),
    most similar first."""
    from ..models.encoder import sentence_embeddings  # imported when used: it loads torch
    E = sentence_embeddings(encoder, df["text"].astype(str).tolist(), max_length=max_length,
                            description="Embedding the texts (evidence)")
    folds = np.asarray(folds)
    found = {}
    for t in targets:
        codes = _codes(df, t)
        confidence = (np.where(codes == 1, P[:, t.column], 1.0 - P[:, t.column]) if t.column is not None
                      else _class_confidence(codes, *variables[t.label]))
        coded = codes == t.predicted
        threshold = confidence[coded].mean() if coded.any() else np.inf
        candidates = _train_rows(folds, t.fold) & coded & (confidence >= threshold)
        candidates[t.row] = False
        sim = E @ E[t.row]
        shown = [_snippet(df, r, sim[r]) for r in _nearest(sim, candidates, n_texts)]
        found[t.index] = f"similar texts coded {t.predicted}: " + " | ".join(shown) if shown else ""
    return found


def _class_confidence(given: np.ndarray, classes: np.ndarray, P: np.ndarray) -> np.ndarray:
    """(n,) out-of-fold probability of each row's given class (0 for a class without a column)."""
    column = {str(c): j for j, c in enumerate(classes)}
    j = np.array([column.get(c, -1) for c in given])
    return np.where(j >= 0, P[np.arange(len(given)), np.maximum(j, 0)], 0.0)
