"""The gold sample: designs with known inclusion probabilities, the size plan, and the provenance check."""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lexcoder.active.provenance import (BATCH_COLUMN, DESIGN_COLUMN, INCLUSION_COLUMN, STRATEGY_COLUMN,
                                        check_gold_provenance)
from lexcoder.active.sampling import draw_sample, plan_sample_size, probability_strata
from lexcoder.errors import ConfigError, DataError
from lexcoder.estimate import estimate_prevalence


@settings(max_examples=80, deadline=None)
@given(st.lists(st.sampled_from(["positive", "low-1", "low-2", "low-3"]), min_size=4, max_size=300),
       st.sampled_from(["random", "stratified", "oversample"]), st.floats(0.05, 0.95), st.integers(0, 2**31),
       st.data())
def test_every_design_knows_each_rows_inclusion_probability(strata, design, share, seed, data):
    strata = np.array(strata, dtype=object)
    n = data.draw(st.integers(len(set(strata)), len(strata)))
    rows, p = draw_sample(strata, n, design=design, oversample=share, seed=seed)
    assert len(rows) == n == len(set(rows)) and np.all((p > 0) & (p <= 1))
    assert (1 / p).sum() == pytest.approx(len(strata))  # Horvitz-Thompson: the weights add up to the corpus
    for name in set(strata):  # inclusion probability = the stratum's share actually drawn
        drawn = strata[rows] == name
        if design != "random":
            assert drawn.sum() >= 1
            np.testing.assert_allclose(p[drawn], drawn.sum() / (strata == name).sum())
    again, _ = draw_sample(strata, n, design=design, oversample=share, seed=seed)
    np.testing.assert_array_equal(rows, again)


def test_strata_from_real_model_outputs(pool):
    thresholds = np.full(len(pool.labels), 0.5)
    strata = probability_strata(pool.probs, thresholds, n_strata=4)
    positive = strata == "positive"
    np.testing.assert_array_equal(positive, (pool.probs >= 0.5).any(axis=1))
    counts = pd.Series(strata[~positive]).value_counts()
    assert set(counts.index) == {"low-1", "low-2", "low-3"} and counts.max() - counts.min() <= 1
    # the positive stratum concentrates the human-coded positives: what oversampling exploits
    truth = pool.truth.to_numpy().any(axis=1)
    assert truth[positive].mean() > 10 * truth[~positive].mean()
    with pytest.raises(ConfigError, match="at least one text per stratum"):
        draw_sample(strata, 3, design="stratified")


def test_plan_gives_the_estimates_interval_width():
    """The classical size, fed to `estimate_prevalence` with exactly the planned prevalence, gives the width."""
    for p, width in ((0.05, 0.02), (0.01, 0.01), (0.3, 0.05)):
        corpus = pd.DataFrame({"id": np.arange(4 * plan_sample_size(p, width=width)["n_classical"]).astype(str),
                               "x_prob": 0.5})
        n = plan_sample_size(p, width=width, corpus_size=len(corpus))["n_classical"]  # finite corpus: fewer
        gold = pd.DataFrame({"id": corpus["id"].head(n), "x": (np.arange(n) < round(p * n)).astype(int)})
        est = estimate_prevalence(corpus, gold, ["x"]).iloc[0]
        assert est["classical_high"] - est["classical_low"] == pytest.approx(width, rel=0.02)


def test_plan_properties():
    base = plan_sample_size(0.05, width=0.02)
    assert base["n_positives"] == 200 and base["recommended"] == base["n_ppi"] == base["n_classical"]
    better = plan_sample_size(0.05, width=0.02, rho2=0.5)
    assert base["n_classical"] * 0.45 < better["n_ppi"] < base["n_classical"] * 0.55  # (1 - rho^2) of it
    assert 3.9 < plan_sample_size(0.05, width=0.01)["n_classical"] / base["n_classical"] < 4.0
    small = plan_sample_size(0.05, width=0.02, corpus_size=2000)
    assert small["n_classical"] < 1000 and small["recommended"] <= 2000
    rare = plan_sample_size(0.002, width=0.02, rho2=0.3)
    assert rare["recommended"] == rare["n_positives"] == 5000  # 10 positives need 5,000 texts at 0.2%
    with pytest.raises(ConfigError, match="width"):
        plan_sample_size(0.05, width=2)


def test_the_planned_size_gives_the_planned_width_on_real_data(pool):
    """Plan from half the held-out texts; draw gold samples of the planned size from the other half."""
    label = "limitation_of_liability"
    j = pool.labels.index(label)
    y, f = pool.truth[label].to_numpy(), pool.probs[:, j]
    half = len(y) // 2
    rho2 = np.corrcoef(y[:half], f[:half])[0, 1] ** 2
    corpus = pd.DataFrame({"id": np.arange(half, len(y)).astype(str), f"{label}_prob": f[half:]})
    truth = pd.Series(y[half:], index=corpus["id"])
    width = 0.03
    plan = plan_sample_size(truth.mean(), width=width, rho2=rho2, corpus_size=len(corpus))
    rng = np.random.default_rng(0)
    widths = []
    for _ in range(40):
        ids = rng.choice(corpus["id"], size=plan["n_ppi"], replace=False)
        gold = pd.DataFrame({"id": ids, label: truth[ids].to_numpy()})
        est = estimate_prevalence(corpus, gold, [label], yhat="prob").iloc[0]
        widths.append(est["ppi_high"] - est["ppi_low"])
    assert np.mean(widths) == pytest.approx(width, rel=0.25)
    assert plan["n_ppi"] < plan["n_classical"]


def test_gold_rows_chosen_by_next_are_refused():
    gold = pd.DataFrame({"id": ["a", "b", "c"], "x": [1, 0, 1], BATCH_COLUMN: [None, "exp1-b1", "exp1-b1"],
                         STRATEGY_COLUMN: [None, "uncertainty", "rare"]})
    with pytest.raises(DataError, match=r"rows 2, 3 of 3 were chosen by `lexcoder next` \(strategies: rare, "
                                        r"uncertainty\)"):
        check_gold_provenance(gold, None, "gold.csv")
    assert check_gold_provenance(gold.head(1), None) is None  # a row with empty provenance is fine


def test_unequal_inclusion_probabilities_are_used_and_said(caplog):
    gold = pd.DataFrame({"id": list("abcd"), DESIGN_COLUMN: "oversample", INCLUSION_COLUMN: [0.5, 0.5, 0.1, 0.1]})
    with caplog.at_level(logging.WARNING):
        assert check_gold_provenance(gold, None, "gold.xlsx") == INCLUSION_COLUMN
    assert "gold.xlsx was drawn by `lexcoder sample` (design: oversample) with unequal inclusion" in caplog.text
    assert check_gold_provenance(gold, "my_weights") == "my_weights"  # the user's choice stands
    equal = gold.assign(**{INCLUSION_COLUMN: [0.1, 0.1, 0.1, 0.1]})
    assert check_gold_provenance(equal, None) is None  # self-weighting: the unweighted interval applies
