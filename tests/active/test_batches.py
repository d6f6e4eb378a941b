"""`choose_batch`: the strategies combined into one batch, on real ToS sentences the model never saw."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import lexcoder
from lexcoder.active import DEFAULT_MIX, choose_batch, parse_mix, resolve_mix
from lexcoder.active.batches import COLD_START_BELOW
from lexcoder.errors import ConfigError


def _batch(pool, n=60, **kwargs):
    counts = pool.coded[pool.labels].sum().to_numpy()
    return choose_batch(pool.texts, n, probs=pool.probs, thresholds=np.full(len(pool.labels), 0.5),
                        labels=pool.labels, n_positive=counts, coded_texts=pool.coded["text"].tolist(), **kwargs)


def test_the_default_mix_fills_each_share_with_a_reason_per_text(pool):
    batch = _batch(pool, 60, seed=1)
    assert len(batch) == 60 and batch["row"].is_unique
    want = {k: round(v * 60) for k, v in DEFAULT_MIX.items()}
    assert batch["strategy"].value_counts().to_dict() == want
    reasons = batch.groupby("strategy")["reason"].first()
    assert reasons["uncertainty"].startswith("undecided on ") and "threshold 0.50" in reasons["uncertainty"]
    assert reasons["rare"].startswith("likely ") and "coded positives" in reasons["rare"]
    assert reasons["diversity"].startswith("diversity: topic cluster")
    random = batch[batch["strategy"] == "random"]
    assert random["inclusion_probability"].eq(6 / len(pool.texts)).all()
    assert batch.loc[batch["strategy"] != "random", "inclusion_probability"].isna().all()
    again = _batch(pool, 60, seed=1)
    pd.testing.assert_frame_equal(batch, again)  # seeded: the same batch
    other = _batch(pool, 60, seed=2)
    assert set(other.loc[other["strategy"] == "random", "row"]) != set(random["row"])


def test_rare_labels_get_more_positives_than_random(pool):
    """What the strategies are for: the rarest labels' positives, found where a random batch finds few."""
    truth = pool.truth.to_numpy()
    rarest = np.argsort(pool.coded[pool.labels].sum().to_numpy())[:3]
    found = {s: truth[_batch(pool, 100, strategy=s, seed=0)["row"]][:, rarest].sum()
             for s in ("random", "rare", "uncertainty", "auto")}
    assert found["rare"] > 5 * max(found["random"], 1)
    assert found["auto"] > 2 * max(found["random"], 1) and found["uncertainty"] > found["random"]


def test_keywords_bring_candidates_for_a_rare_label(pool):
    batch = _batch(pool, 40, seed=0, keywords={"arbitration": r"arbitrat\w*"})
    hits = batch[batch["strategy"] == "keyword"]
    assert len(hits) == 10 and all("arbitrat" in pool.texts[r].lower() for r in hits["row"])
    assert hits["reason"].str.startswith("keyword for arbitration: matches").all()
    with pytest.raises(ConfigError, match="Keywords are given for \\['arbitraton'\\]"):
        _batch(pool, 40, keywords={"arbitraton": "arbitrat"})


def test_without_a_model_the_batch_starts_cold(pool):
    batch = choose_batch(pool.texts, 50, seed=0)
    assert set(batch["strategy"]) == {"cold_start"} and len(batch) == 50
    assert resolve_mix("auto", has_model=True, n_coded=COLD_START_BELOW - 1) == {"cold_start": 1.0}
    with pytest.raises(ConfigError, match="needs the model's predictions"):
        choose_batch(pool.texts, 10, strategy="uncertainty")
    with pytest.raises(ConfigError, match="Unknown strategy 'uncertanity'"):
        resolve_mix({"uncertanity": 1.0}, has_model=True, n_coded=500)


def test_parse_mix():
    assert parse_mix("rare") == "rare"
    assert parse_mix("uncertainty=0.5, rare=0.3,random=0.2") == {"uncertainty": 0.5, "rare": 0.3, "random": 0.2}
    with pytest.raises(ConfigError, match="name=share"):
        parse_mix("uncertainty=half")


def test_categorical_variables_by_margin_and_rare_classes(shared_data):
    """Rhetorical roles of Indian Supreme Court sentences: one class per sentence (multi-class)."""
    df = pd.read_csv(shared_data("indian_sc_rhetorical_roles/texts.csv.gz"))
    groups = sorted(df["group"].unique())
    coded, rest = df[df["group"].isin(groups[:6])], df[df["group"].isin(groups[20:30])].reset_index(drop=True)
    model = lexcoder.build_model("tfidf").fit(coded["text"].tolist(), coded["label"].to_numpy())
    classes = [str(c) for c in model.classes_]
    P = model.predict_proba(rest["text"].tolist())
    counts = {"role": coded["label"].astype(str).value_counts().to_dict()}
    batch = choose_batch(rest["text"].tolist(), 60, class_probs={"role": (classes, P)}, class_counts=counts,
                         strategy={"uncertainty": 0.5, "rare": 0.5}, seed=0)
    unsure = batch[batch["strategy"] == "uncertainty"]
    assert len(unsure) == 30 and unsure["reason"].str.startswith("undecided on role: ").all()
    top2 = np.sort(P, axis=1)[:, -2:]
    margin = top2[:, 1] - top2[:, 0]
    assert margin[unsure["row"]].mean() < margin.mean() / 2  # the undecided ones, not the typical ones
    rare = batch[batch["strategy"] == "rare"]
    rarest = min(classes, key=lambda c: counts["role"].get(c, 0))
    assert rare["reason"].iloc[0].startswith(f"likely role={rarest}")
    got = rest.loc[rare["row"], "label"].astype(str)
    small = {c for c in classes if counts["role"].get(c, 0) < np.median(list(counts["role"].values()))}
    assert got.isin(small).mean() > rest["label"].astype(str).isin(small).mean()
