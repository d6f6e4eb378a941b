"""Explanations of the queue rows (lexcoder.audit.explain) on real data: the ToS sentences (0/1 labels) and
Indian Supreme Court rhetorical roles (a categorical variable)."""
from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer

from lexcoder.audit import audit_folds, out_of_fold_class_proba, out_of_fold_proba, suggested_classes
from lexcoder.audit.crossfit import fit_fold_model
from lexcoder.audit.explain import EXPLANATION_COLUMNS, explain_queue

TERM = re.compile(r"“([^”]+)” ([+-]\d+\.\d\d)")
NEIGHBOUR = re.compile(r"id (\S+) \((\d\.\d\d)\)")
ANALYZE = TfidfVectorizer(ngram_range=(1, 2)).build_analyzer()  # the TF-IDF model's own tokenisation


def _terms(evidence: str) -> list[tuple[str, float]]:
    return [(t, float(v)) for t, v in TERM.findall(evidence)]


@pytest.fixture(scope="module")
def tos_oof(tos_slice, audit_labels):
    """Six ToS documents, two labels, 3-fold out-of-fold TF-IDF probabilities."""
    docs = sorted(tos_slice["doc_id"].unique())[:6]
    df = tos_slice[tos_slice["doc_id"].isin(docs)].reset_index(drop=True).rename(columns={"doc_id": "group"})
    labels = audit_labels[:2]
    folds = audit_folds(df, labels, n_folds=3, seed=0, n_clusters=8)
    P = out_of_fold_proba(df["text"], df[labels].to_numpy(), folds, label_names=labels)
    return df, labels, folds, P


def _label_queue(df, labels, P, n=15):
    """The ``n`` rows per label with the lowest probability of their own code (a queue's worst rows)."""
    rows = []
    for j, lab in enumerate(labels):
        own = np.where(df[lab] == 1, P[:, j], 1 - P[:, j])
        rows += [{"id": df["id"].iloc[r], "label": lab, "reason": "test"} for r in np.argsort(own)[:n]]
    return pd.DataFrame(rows)


def test_audit_queue_and_views_carry_the_explanations(small_run):
    run_dir, _, audit = small_run
    queue = audit.queue
    assert set(EXPLANATION_COLUMNS) <= set(queue.columns)
    assert list(queue.columns).index("evidence") == list(queue.columns).index("reason") + 1
    stored = pd.read_parquet(run_dir / "label_issues.parquet")
    view = pd.read_csv(run_dir / "label_issues.csv", encoding="utf-8-sig", keep_default_na=False)
    assert set(EXPLANATION_COLUMNS) <= set(stored.columns) and set(EXPLANATION_COLUMNS) <= set(view.columns)
    flagged = queue["reason"].str.contains("model confident")
    assert (queue.loc[flagged, "evidence"] != "").mean() > 0.8  # nearly every flag names its n-grams
    assert (queue["nearest_other"] != "").all()


def test_every_evidence_ngram_is_in_the_text_and_pushes_toward_the_prediction(small_run):
    queue = small_run[2].queue
    data = pd.read_parquet(small_run[0] / "data.parquet").set_index("id")
    checked = 0
    for rec in queue[queue["evidence"] != ""].itertuples():
        grams = set(ANALYZE(data.loc[rec.id, "text"]))
        toward_one = rec.model_probability >= 0.5
        for term, value in _terms(rec.evidence):
            assert term in grams, (rec.id, term)
            assert (value > 0) == toward_one, (rec.id, term, value)
            checked += 1
    assert checked > 20


def test_a_strongly_weighted_ngram_in_the_text_is_listed(tos_oof):
    """The fold model's heaviest positive unigram, in the shortest text of that fold that contains it."""
    df, labels, folds, P = tos_oof
    fold, lab = 0, labels[0]
    model, _ = fit_fold_model(df["text"], df[[lab]].to_numpy(), (folds != fold), kind="tfidf", name=None,
                              params={}, names=[lab])
    vocabulary = model.vectorizers_[0].get_feature_names_out()
    weights = model.coef_[0, :len(vocabulary)]
    unigrams = [k for k in np.argsort(-weights) if " " not in vocabulary[k]][:5]
    held = df[(folds == fold) & (P[:, 0] >= 0.5)]
    for k in unigrams:
        having = held[held["text"].map(lambda t: vocabulary[k] in ANALYZE(t))]
        if len(having):
            break
    row = having.loc[having["text"].str.len().idxmin()]
    queue = pd.DataFrame({"id": [row["id"]], "label": [lab], "reason": [""]})
    out = explain_queue(queue, df, df["text"], folds, labels=labels, P=P)
    listed = dict(_terms(out["evidence"].iloc[0]))
    assert vocabulary[k] in listed and listed[vocabulary[k]] > 0


def test_explanations_come_from_the_fold_model_not_the_rows_own_code(tos_oof):
    """Flipping the explained row's code changes nothing in its evidence (the fold model never saw it)."""
    df, labels, folds, P = tos_oof
    queue = _label_queue(df, labels, P, n=30)
    queue = queue[queue["id"].isin(df["id"][folds == 0])].reset_index(drop=True)  # one fold's rows
    before = explain_queue(queue, df, df["text"], folds, labels=labels, P=P)["evidence"]
    flipped = df.copy()
    ids = set(queue["id"])
    for lab in labels:
        mine = flipped["id"].isin(ids)
        flipped.loc[mine, lab] = 1 - flipped.loc[mine, lab]
    after = explain_queue(queue, flipped, flipped["text"], folds, labels=labels, P=P)["evidence"]
    assert (before != "").any()
    pd.testing.assert_series_equal(before, after)


def test_nearest_other_rows_have_the_other_code_and_are_nearer_than_random(tos_oof):
    df, labels, folds, P = tos_oof
    queue = _label_queue(df, labels, P)
    out = explain_queue(queue, df, df["text"], folds, labels=labels, P=P)
    code = df.set_index("id")[labels]
    unigram = TfidfVectorizer().fit(df["text"])  # an independent similarity to compare with
    X = unigram.transform(df["text"])
    position = pd.Series(np.arange(len(df)), index=df["id"])
    rng = np.random.default_rng(0)
    nearest, random = [], []
    for rec in out.itertuples():
        shown = NEIGHBOUR.findall(rec.nearest_other)
        assert len(shown) == 2
        own = code.loc[rec.id, rec.label]
        assert all(code.loc[i, rec.label] == 1 - own for i, _ in shown)
        assert all(i != rec.id for i, _ in shown)
        sims = [float(s) for _, s in shown]
        assert sims == sorted(sims, reverse=True)
        others = np.flatnonzero(df[rec.label].to_numpy() == 1 - own)
        r = position[rec.id]
        nearest.append((X[r] @ X[position[shown[0][0]]].T).toarray().item())
        random.append((X[r] @ X[rng.choice(others)].T).toarray().item())
    assert np.mean(nearest) > np.mean(random) + 0.1


def test_a_conflicting_duplicate_is_its_copys_nearest_other(small_run, audit_labels):
    """The fixture's twins are copies of two sentences coded the other way on the first label."""
    queue = small_run[2].queue
    data = pd.read_parquet(small_run[0] / "data.parquet")
    lab = audit_labels[0]
    twin = queue[(queue["id"] == "twin_a") & (queue["label"] == lab)]
    assert len(twin) == 1
    original = data.loc[data["text"] == data.set_index("id").loc["twin_a", "text"], "id"]
    first = NEIGHBOUR.findall(twin["nearest_other"].iloc[0])[0]
    assert first[0] in set(original) - {"twin_a"} and first[1] == "1.00"


@pytest.fixture(scope="module")
def roles_oof(shared_data):
    """Ten small judgments' rhetorical roles, 3-fold out-of-fold class probabilities (TF-IDF)."""
    df = pd.read_csv(shared_data("indian_sc_rhetorical_roles/texts.csv.gz"))
    small = df["group"].value_counts().sort_values().index[:10]
    part = df[df["group"].isin(small)].reset_index(drop=True).rename(columns={"label": "role"})
    part["id"] = part["id"].astype(str)
    classes = np.asarray(sorted(part["role"].unique()), dtype=object)
    folds = audit_folds(part.assign(**{c: (part["role"] == c).astype(int) for c in classes}), list(classes),
                        n_folds=3, seed=0, n_clusters=8)
    P = out_of_fold_class_proba(part["text"], part["role"].to_numpy(), folds, classes=classes)
    return part, classes, folds, P


def test_categorical_rows_are_explained_toward_the_suggested_class(roles_oof):
    part, classes, folds, P = roles_oof
    y = np.searchsorted(classes, part["role"].to_numpy())
    worst = np.argsort(P[np.arange(len(y)), y])[:20]
    suggested = classes[suggested_classes(y, P)]
    queue = pd.DataFrame({"id": part["id"].to_numpy()[worst], "label": "role", "reason": "",
                          "suggested_value": suggested[worst]})
    out = explain_queue(queue, part, part["text"], folds, labels=[], P=np.zeros((len(part), 0)),
                        variables={"role": (classes, P)})
    assert (out["evidence"] != "").mean() > 0.8
    role = part.set_index("id")["role"]
    for rec in out.itertuples():
        for term, value in _terms(rec.evidence):
            assert term in set(ANALYZE(part.set_index("id").loc[rec.id, "text"])) and value > 0
        shown = NEIGHBOUR.findall(rec.nearest_other)
        assert shown and all(role[i] == rec.suggested_value for i, _ in shown)
