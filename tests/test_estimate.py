"""Prevalence and regression estimates from predicted labels (PPI++), on the bundled ToS data."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import lexcoder
from lexcoder.cli import app
from lexcoder.demo import demo_config
from lexcoder.errors import DataError
from lexcoder.estimate import estimate_prevalence, estimate_regression, ppi_glm, ppi_mean, ppi_mean_adjusted

runner = CliRunner()


def _coverage_benchmark():
    """benchmarks/bench_ppi_coverage.py, whose simulator (repeated gold samples, truth known) the
    coverage tests below share: the simulator is benchmark code, the intervals it checks are lexcoder's."""
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_ppi_coverage.py"
    spec = importlib.util.spec_from_file_location("bench_ppi_coverage", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


simulate_coverage = _coverage_benchmark().simulate_coverage


# ---------------------------------------------------------------- the simulation: truth known, 200 gold samples

@pytest.fixture(scope="module")
def model_outputs(tos_full, tos_labels):
    """TF-IDF model trained on ToS folds 0-1 (thresholds tuned on fold 1); corpus = folds 2-4, true codes known."""
    labels = ["unfair", *tos_labels]
    train, val = tos_full[tos_full["fold"] == 0], tos_full[tos_full["fold"] == 1]
    corpus = tos_full[tos_full["fold"] >= 2].reset_index(drop=True)
    model = lexcoder.build_model("tfidf").fit(train["text"].tolist(), train[labels].to_numpy())
    thresholds = lexcoder.choose_thresholds(val[labels].to_numpy(), model.predict_proba(val["text"].tolist()))
    P = model.predict_proba(corpus["text"].tolist())
    return labels, corpus, P, (P >= thresholds).astype(int)


@pytest.fixture(scope="module")
def simulation(model_outputs):
    labels, corpus, P, pred = model_outputs
    return labels, corpus[labels].to_numpy(), P, pred.astype(float)


@pytest.mark.parametrize("label", ["unfair", "limitation_of_liability", "unilateral_termination", "arbitration"])
def test_ppi_intervals_cover_the_true_prevalence(simulation, label):
    labels, Y, P, _ = simulation
    j = labels.index(label)
    res = simulate_coverage(Y[:, j], P[:, j], n_gold=500, reps=200, seed=7,
                            methods=("classical", "ppi++_ac")).set_index("method")
    # 200 repetitions: a 95% interval covers 95% +- 3 binomial SEs (1.5 points each)
    assert 0.90 <= res.loc["ppi++_ac", "coverage"] <= 0.995, res
    assert abs(res.loc["ppi++_ac", "bias"]) < 0.25 * res.loc["ppi++_ac", "mean_width"]


def test_wald_ppi_under_covers_a_rare_label_and_the_adjustment_repairs_it(simulation):
    """The reason for the default: ppi_py's Wald interval with 300 gold rows and ~1 positive in them."""
    labels, Y, P, _ = simulation
    j = labels.index("arbitration")
    res = simulate_coverage(Y[:, j], P[:, j], n_gold=300, reps=200, seed=11,
                            methods=("ppi++", "ppi++_ac")).set_index("method")
    assert res.loc["ppi++", "coverage"] < 0.85
    assert res.loc["ppi++_ac", "coverage"] >= 0.90


@pytest.mark.parametrize("label", ["unfair", "limitation_of_liability"])
def test_ppi_is_narrower_than_classical_and_naive_is_biased(simulation, label):
    labels, Y, P, pred = simulation
    j = labels.index(label)
    res = simulate_coverage(Y[:, j], P[:, j], n_gold=500, reps=100, seed=3,
                            methods=("classical", "agresti_coull", "ppi++_ac")).set_index("method")
    assert res.loc["ppi++_ac", "mean_width"] < 0.9 * res.loc["classical", "mean_width"]
    assert res.loc["ppi++_ac", "mean_width"] < 0.9 * res.loc["agresti_coull", "mean_width"]
    naive = simulate_coverage(Y[:, j], pred[:, j], n_gold=500, reps=20, seed=3, methods=("naive",))
    assert naive["coverage"].iloc[0] < 0.2  # the model's codes alone miss the truth


def test_adjusted_interval_reduces_to_ppi_py_and_agresti_coull():
    from statsmodels.stats.proportion import proportion_confint
    rng = np.random.default_rng(0)
    yhat_corpus = rng.beta(1, 8, size=5000)
    y = (rng.random(300) < 0.1).astype(float)
    yhat = np.clip(0.5 * y + rng.beta(1, 8, size=300), 0, 1)
    plain = ppi_mean_adjusted(y, yhat, yhat_corpus, pseudo=0)
    ref = ppi_mean(y, yhat, yhat_corpus)  # ppi_py.ppi_mean_ci / ppi_mean_pointestimate
    assert (plain.estimate, plain.low, plain.high) == pytest.approx((ref.estimate, ref.low, ref.high), rel=1e-9)
    ac = ppi_mean_adjusted(y, yhat, yhat_corpus, lam=0.0)
    assert (ac.low, ac.high) == pytest.approx(proportion_confint(y.sum(), len(y), 0.05, "agresti_coull"))
    adjusted = ppi_mean_adjusted(y, yhat, yhat_corpus)
    assert adjusted.estimate == pytest.approx(ref.estimate)
    assert adjusted.high - adjusted.low > plain.high - plain.low
    finite = ppi_mean_adjusted(y, yhat, yhat_corpus, lam=0.0, finite_population=True)  # 300 of 5,000 rows
    assert finite.high - finite.low == pytest.approx((ac.high - ac.low) * np.sqrt(1 - 300 / 5000))


@pytest.mark.slow  # ppi_py compiles its numba loops on first use (20-40 s)
@pytest.mark.parametrize("kind", ["ols", "logistic"])
def test_ppi_glm_matches_ppi_py(kind):
    import ppi_py
    rng = np.random.default_rng(1)
    x_corpus = np.column_stack([np.ones(4000), rng.normal(size=4000), rng.random(4000) < 0.3])
    x = x_corpus[:400]
    p_true = expit(-2 + 0.8 * x_corpus[:, 1] + 0.5 * x_corpus[:, 2])
    yhat_corpus = np.clip(p_true + rng.normal(0, 0.1, 4000), 0, 1)
    y = (rng.random(400) < p_true[:400]).astype(float)
    ours = ppi_glm(x, y, yhat_corpus[:400], x_corpus, yhat_corpus, kind=kind)
    fn = ppi_py.ppi_ols_ci if kind == "ols" else ppi_py.ppi_logistic_ci
    low, high = fn(x, y, yhat_corpus[:400], x_corpus, yhat_corpus, alpha=0.05)
    np.testing.assert_allclose(ours[1], low, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(ours[2], high, rtol=1e-6, atol=1e-8)


# ---------------------------------------------------------------- files and the CLI: demo run + coded test split

@pytest.fixture(scope="module")
def coded(tmp_path_factory, model_outputs, tos_labels):
    """A run directory (the demo's config), the coded corpus as `lexcoder predict` writes it, a 600-row
    human-coded random sample, and the corpus with its true codes."""
    from lexcoder.config import dump_config
    labels, held_out, P, pred = model_outputs
    root = tmp_path_factory.mktemp("estimate")
    (root / "run").mkdir()
    (root / "run" / "config.toml").write_text(dump_config(demo_config()), encoding="utf-8")
    coded = held_out[["id", "doc_id", "text"]].copy()
    for lab in tos_labels:
        coded[f"{lab}_prob"], coded[f"{lab}_pred"] = P[:, labels.index(lab)], pred[:, labels.index(lab)]
    coded.to_parquet(root / "coded.parquet")
    held_out.sample(n=600, random_state=0).drop(columns=["text"]).to_csv(root / "gold.csv", index=False)
    return root / "run", root / "coded.parquet", root / "gold.csv", held_out


def _estimate(run, corpus, gold, *extra):
    res = runner.invoke(app, ["estimate", str(run), "--corpus", str(corpus), "--gold", str(gold), *extra])
    res.text = " ".join(res.output.split())  # rich wraps long lines
    return res


def test_cli_estimate_prints_and_writes_the_table(coded, tmp_path, tos_labels):
    run, corpus, gold, held_out = coded
    res = _estimate(run, corpus, gold, "--out", str(tmp_path / "est.csv"))
    assert res.exit_code == 0, res.output
    assert "PPI++" in res.output and "limitation_of_liability" in res.output
    table = pd.read_csv(tmp_path / "est.csv")
    assert table["label"].tolist() == tos_labels
    assert (table["n_corpus"] == len(held_out)).all() and (table["n_gold"] == 600).all()
    assert (table["ppi_low"] <= table["ppi"]).all() and (table["ppi"] <= table["ppi_high"]).all()
    truth = held_out[tos_labels].mean().to_numpy()
    covered = (table["ppi_low"] <= truth) & (truth <= table["ppi_high"])
    assert covered.sum() >= 7  # 95% intervals: at most a couple of the 9 may miss
    rare = table[table["gold_positives"] < 10]
    assert (~rare["reliable"]).all() and rare["note"].str.contains("unreliable").all()
    if len(rare):
        assert "unreliable" in res.output


def test_cli_estimate_by_group(coded, tmp_path):
    run, corpus, gold, held_out = coded
    res = _estimate(run, corpus, gold, "--by", "doc_id", "--labels", "limitation_of_liability",
                    "--out", str(tmp_path / "by.parquet"))
    assert res.exit_code == 0, res.output
    table = pd.read_parquet(tmp_path / "by.parquet")
    assert set(table["doc_id"]) == set(held_out["doc_id"])
    sizes = held_out["doc_id"].value_counts()
    assert (table.set_index("doc_id")["n_corpus"] == sizes.reindex(table["doc_id"]).to_numpy()).all()
    assert table["n_gold"].sum() == 600


def test_inclusion_probabilities_correct_an_oversampled_gold_sample(coded):
    """Texts the model codes positive were sampled 8x as often: unweighted estimates are biased upwards."""
    run, corpus_path, _, held_out = coded
    corpus = pd.read_parquet(corpus_path)
    label = "limitation_of_liability"
    rng = np.random.default_rng(5)
    p = np.where(corpus[f"{label}_pred"] == 1, 0.8, 0.1)
    take = rng.random(len(corpus)) < p
    gold = held_out.set_index("id").loc[corpus["id"][take], [label]].reset_index()
    gold["incl_prob"] = p[take]
    truth = held_out[label].mean()
    weighted = estimate_prevalence(corpus, gold, [label], weight_column="incl_prob").iloc[0]
    unweighted = estimate_prevalence(corpus, gold, [label]).iloc[0]
    assert gold[label].mean() > 2 * truth
    assert weighted["classical_low"] <= truth <= weighted["classical_high"]
    assert weighted["ppi_low"] <= truth <= weighted["ppi_high"]
    assert abs(unweighted["classical"] - truth) > abs(weighted["classical"] - truth)
    # two inclusion probabilities, no stratum column: the rows of each are taken as a stratum
    assert weighted["method"].startswith("PPI++ (design-based: stratified")


def test_yhat_pred_uses_the_0_1_codes(coded, tmp_path):
    run, corpus, gold, _ = coded
    res = _estimate(run, corpus, gold, "--yhat", "pred", "--labels", "unilateral_change,arbitration",
                    "--out", str(tmp_path / "e.csv"))
    assert res.exit_code == 0, res.output
    by_pred = pd.read_csv(tmp_path / "e.csv")
    by_prob = estimate_prevalence(pd.read_parquet(corpus), pd.read_csv(gold), ["unilateral_change", "arbitration"])
    assert by_pred["label"].tolist() == ["unilateral_change", "arbitration"]
    assert not np.allclose(by_pred["ppi_high"], by_prob["ppi_high"])
    assert np.allclose(by_pred["naive"], by_prob["naive"])  # naive = share coded positive either way


def test_gold_may_carry_its_own_predictions(coded):
    _, corpus_path, gold_path, _ = coded
    corpus = pd.read_parquet(corpus_path)
    gold = pd.read_csv(gold_path)
    label = "unilateral_change"
    own = gold.merge(corpus[["id", f"{label}_prob", f"{label}_pred"]], on="id")
    own["id"] = "outside_" + own["id"]
    a = estimate_prevalence(corpus, own, [label]).iloc[0]
    b = estimate_prevalence(corpus, gold, [label]).iloc[0]
    assert a["ppi"] == pytest.approx(b["ppi"])
    # a sample from outside the corpus gets no finite-population correction: a slightly wider interval
    assert b["method"].endswith("finite corpus)") and not a["method"].endswith("finite corpus)")
    assert 1 < (a["ppi_high"] - a["ppi_low"]) / (b["ppi_high"] - b["ppi_low"]) < 1.1


@pytest.mark.parametrize("kind", ["ols", "logistic"])
def test_cli_regress(coded, tmp_path, kind):
    run, corpus_path, gold_path, held_out = coded
    corpus = pd.read_parquet(corpus_path)
    corpus["long"] = (corpus["text"].str.len() > 150).astype(int)
    corpus.to_parquet(tmp_path / "coded.parquet")
    res = runner.invoke(app, ["regress", str(run), "--corpus", str(tmp_path / "coded.parquet"), "--gold",
                              str(gold_path), "--outcome", "limitation_of_liability", "--on", "long",
                              *(["--logistic"] if kind == "logistic" else []), "--out", str(tmp_path / "r.csv")])
    assert res.exit_code == 0, res.output
    table = pd.read_csv(tmp_path / "r.csv").set_index("term")
    assert table.index.tolist() == ["intercept", "long"]
    assert (table["ppi_low"] < table["ppi"]).all() and (table["ppi"] < table["ppi_high"]).all()
    if kind == "ols":  # linear probability model with one 0/1 covariate: the coefficient is a difference
        ppi_w, cls_w = table["ppi_high"] - table["ppi_low"], table["classical_high"] - table["classical_low"]
        assert (ppi_w < cls_w).all()
        corpus = corpus.merge(held_out[["id", "limitation_of_liability"]], on="id")
        diff = corpus.groupby("long")["limitation_of_liability"].mean().diff().iloc[-1]
        assert table.loc["long", "ppi_low"] <= diff <= table.loc["long", "ppi_high"]


def test_regress_reports_categories_without_human_codes(coded, tos_labels):
    _, corpus_path, gold_path, _ = coded
    corpus, gold = pd.read_parquet(corpus_path), pd.read_csv(gold_path)
    gold = gold[gold["doc_id"] != sorted(corpus["doc_id"].unique())[-1]]  # not the reference category
    with pytest.raises(DataError, match="cannot be estimated"):
        estimate_regression(corpus, gold, "limitation_of_liability", ["doc_id"], labels=tos_labels)


def test_predicted_label_as_predictor_covers_the_true_coefficient(simulation):
    """Outcome observed for every text, the label a predictor: the naive fit (model codes) is attenuated."""
    labels, Y, P, pred = simulation
    j = labels.index("limitation_of_liability")
    rng = np.random.default_rng(2)
    z = 1.0 + 2.0 * Y[:, j] + rng.normal(0, 1, len(Y))
    design = lambda v: np.column_stack([np.ones(len(v)), v])  # noqa: E731
    truth = np.linalg.lstsq(design(Y[:, j]), z, rcond=None)[0][1]
    naive = ppi_glm(design(pred[:, j]), z, z, design(pred[:, j]), z, lam=0.0)
    assert not naive[1][1] <= truth <= naive[2][1]
    hits, widths = [], []
    for _ in range(100):
        i = rng.choice(len(Y), size=500, replace=False)
        est, low, high = ppi_glm(design(Y[i, j]), z[i], z[i], design(P[:, j]), z, xhat=design(P[i, j]))
        _, c_low, c_high = ppi_glm(design(Y[i, j]), z[i], z[i], design(P[:, j]), z, xhat=design(P[i, j]), lam=0.0)
        hits.append(low[1] <= truth <= high[1])
        widths.append((high[1] - low[1]) / (c_high[1] - c_low[1]))
    assert 0.88 <= np.mean(hits) <= 1.0  # 100 repetitions: 95% +- 2.5 SE
    assert np.mean(widths) < 0.95


def test_cli_regress_outcome_on_a_predicted_label(coded, tmp_path):
    run, corpus_path, gold_path, held_out = coded
    corpus = pd.read_parquet(corpus_path)
    truth_y = held_out.set_index("id").loc[corpus["id"], "limitation_of_liability"].to_numpy()
    corpus["score"] = 1 + 2 * truth_y + np.random.default_rng(4).normal(0, 1, len(corpus))
    corpus.to_parquet(tmp_path / "coded.parquet")
    res = runner.invoke(app, ["regress", str(run), "--corpus", str(tmp_path / "coded.parquet"), "--gold",
                              str(gold_path), "--outcome", "score", "--on", "limitation_of_liability",
                              "--out", str(tmp_path / "r.csv")])
    assert res.exit_code == 0, res.output
    row = pd.read_csv(tmp_path / "r.csv").set_index("term").loc["limitation_of_liability"]
    assert row["ppi_low"] <= 2.0 <= row["ppi_high"]
    assert row["naive_high"] < 2.0  # misclassified codes attenuate the naive coefficient
    assert row["ppi_high"] - row["ppi_low"] < row["classical_high"] - row["classical_low"]


def test_regress_needs_a_label(coded, tos_labels):
    _, corpus_path, gold_path, _ = coded
    with pytest.raises(lexcoder.LexcoderError, match="None of"):
        estimate_regression(pd.read_parquet(corpus_path), pd.read_csv(gold_path), "doc_id", ["doc_id"],
                            labels=tos_labels)


# ---------------------------------------------------------------- errors that name the file, column and fix

def test_error_gold_without_label_column(coded, tmp_path):
    run, corpus, gold, _ = coded
    pd.read_csv(gold).drop(columns=["arbitration"]).to_csv(tmp_path / "g.csv", index=False)
    res = _estimate(run, corpus, tmp_path / "g.csv")
    assert res.exit_code == 2
    assert "arbitration" in res.text and "g.csv" in res.text


def test_error_gold_ids_not_in_corpus(coded, tmp_path):
    run, corpus, gold, _ = coded
    g = pd.read_csv(gold)
    g.loc[:2, "id"] = ["nope_1", "nope_2", "nope_3"]
    g.to_csv(tmp_path / "g.csv", index=False)
    res = _estimate(run, corpus, tmp_path / "g.csv")
    assert res.exit_code == 2
    assert "3 of 600 ids are not in" in res.text and "nope_1" in res.text


def test_error_corpus_not_coded(coded, tmp_path):
    run, _, gold, held_out = coded
    held_out[["id", "text"]].to_csv(tmp_path / "raw.csv", index=False)
    res = _estimate(run, tmp_path / "raw.csv", gold)
    assert res.exit_code == 2 and "lexcoder predict" in res.text


def test_error_bad_inclusion_probabilities(coded, tmp_path):
    run, corpus, gold, _ = coded
    g = pd.read_csv(gold).assign(p=0.5)
    g.loc[4, "p"] = 1.5
    g.to_csv(tmp_path / "g.csv", index=False)
    res = _estimate(run, corpus, tmp_path / "g.csv", "--weights", "p")
    assert res.exit_code == 2 and "'p'" in res.text and "rows 5 do not" in res.text


def test_cli_estimate_never_writes_over_an_input_or_an_existing_file(coded, tmp_path):
    run, corpus, gold, _ = coded
    before = gold.read_bytes()
    res = _estimate(run, corpus, gold, "--out", str(gold), "--overwrite")
    assert res.exit_code == 2 and "is an input of this command" in res.text and gold.read_bytes() == before
    (tmp_path / "mine.csv").write_text("my own table")
    res = _estimate(run, corpus, gold, "--out", str(tmp_path / "mine.csv"))
    assert res.exit_code == 2 and "--overwrite" in res.text
    assert (tmp_path / "mine.csv").read_text() == "my own table"


# ---------------------------------------------------------------- design-based intervals for stratified samples

def _oversampled(P: np.ndarray, n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """An oversampled gold sample as `lexcoder sample --design oversample` draws it: rows, strata, 1 / pi."""
    from lexcoder.active.sampling import draw_sample, probability_strata
    strata = probability_strata(P, np.full(P.shape[1], 0.5))
    rows, p = draw_sample(strata, n, design="oversample", seed=seed)
    return rows, strata[rows], 1 / p


def test_design_based_interval_covers_a_rare_label_where_the_weighted_wald_did_not(simulation):
    """200 oversampled gold samples (half from the texts the model codes positive) of a 0.3% label."""
    from lexcoder.estimate.design import stratified_mean_adjusted
    labels, Y, P, _ = simulation
    j = labels.index("arbitration")
    truth = Y[:, j].mean()
    new, old = [], []
    for seed in range(200):
        rows, strata, w = _oversampled(P[:, 1:], 1000, seed)
        ours = stratified_mean_adjusted(Y[rows, j], P[rows, j], P[:, j], strata, w)
        wald = ppi_mean(Y[rows, j], P[rows, j], P[:, j], weights=w)
        new.append(ours.low <= truth <= ours.high)
        old.append(wald.low <= truth <= wald.high)
    assert np.mean(new) >= 0.9
    assert np.mean(old) < 0.8 and np.mean(new) > np.mean(old) + 0.15


def test_design_based_interval_with_strata_without_positives(simulation):
    """No human-coded positive in the under-sampled strata (or anywhere): still an honest, non-empty interval."""
    from lexcoder.estimate.design import stratified_mean_adjusted
    labels, Y, P, _ = simulation
    j = labels.index("privacy_included")
    rows, strata, w = _oversampled(P[:, 1:], 1000, 0)
    y = Y[rows, j].astype(float)
    y[strata != "positive"] = 0  # the low strata's positives were missed
    only_positive = stratified_mean_adjusted(y, P[rows, j], P[:, j], strata, w, lam=0.0)
    share = w[strata == "positive"].sum() / w.sum()
    assert only_positive.estimate == pytest.approx(share * y[strata == "positive"].mean())
    assert only_positive.high > only_positive.estimate + 0.002  # the empty strata still add their uncertainty
    nothing = stratified_mean_adjusted(np.zeros(len(y)), P[rows, j], P[:, j], strata, w, lam=0.0)
    assert nothing.low == 0 and 0 < nothing.high < 0.02
    wald = ppi_mean(np.zeros(len(y)), P[rows, j], P[:, j], weights=w, lam=0.0)
    assert wald.high - wald.low == pytest.approx(0)  # what the weighted Wald interval says: exactly 0


def test_one_stratum_is_the_agresti_coull_interval(simulation):
    from lexcoder.estimate.design import stratified_mean_adjusted
    labels, Y, P, _ = simulation
    rows = np.random.default_rng(3).choice(len(Y), 500, replace=False)
    j = labels.index("jurisdiction")
    ours = stratified_mean_adjusted(Y[rows, j], P[rows, j], P[:, j], np.zeros(500), np.full(500, len(Y) / 500),
                                    lam=0.0)
    ac = ppi_mean_adjusted(Y[rows, j], P[rows, j], P[:, j], lam=0.0, finite_population=True)
    np.testing.assert_allclose([ours.estimate, ours.low, ours.high], [ac.estimate, ac.low, ac.high], rtol=1e-9)


def test_estimate_on_a_sample_file_uses_the_design_based_interval_and_says_so(coded, tmp_path, caplog):
    from lexcoder.active.provenance import DESIGN_COLUMN, INCLUSION_COLUMN, STRATUM_COLUMN
    run, corpus_path, _, held_out = coded
    corpus = pd.read_parquet(corpus_path)
    probs = corpus[[c for c in corpus.columns if c.endswith("_prob")]].to_numpy()
    rows, strata, w = _oversampled(probs, 400, 1)
    gold = held_out.iloc[rows].drop(columns=["text"]).assign(
        **{DESIGN_COLUMN: "oversample", STRATUM_COLUMN: strata, INCLUSION_COLUMN: 1 / w})
    # without a stratum column and with a probability per row (no strata to find): the Wald fallback, said
    # (before the CLI runs: its logging setup replaces the handler caplog listens with)
    pps = gold.drop(columns=[STRATUM_COLUMN]).assign(**{INCLUSION_COLUMN: np.linspace(0.02, 0.9, len(gold))})
    with caplog.at_level("WARNING"):
        est = estimate_prevalence(corpus, pps, ["arbitration"])
    assert est["method"].iloc[0] == "PPI++ (weighted, Wald)" and "form no strata" in caplog.text
    gold.to_csv(tmp_path / "gold.csv", index=False)
    res = _estimate(run, corpus_path, tmp_path / "gold.csv", "--out", str(tmp_path / "est.csv"))
    assert res.exit_code == 0, res.output
    assert "Interval: PPI++ (design-based: stratified, weighted by 1/inclusion probability, Agresti-Coull " \
           "adjusted per stratum, finite corpus)" in res.text
    assert pd.read_csv(tmp_path / "est.csv")["method"].str.startswith("PPI++ (design-based").all()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["positive", "low-1", "low-2"]), st.integers(0, 1)), min_size=30,
                max_size=400), st.integers(0, 2**31))
def test_stratified_point_is_the_weighted_mean_and_the_interval_is_never_empty(rows, seed):
    from lexcoder.active.sampling import draw_sample
    from lexcoder.estimate.design import stratified_mean_adjusted
    strata, y = (np.array(v) for v in zip(*rows))
    n = max(len(set(strata)), len(y) // 3)
    picked, p = draw_sample(strata.astype(object), n, design="oversample", seed=seed)
    yhat = np.random.default_rng(seed).random(len(y))
    ci = stratified_mean_adjusted(y[picked], yhat[picked], yhat, strata[picked], 1 / p, lam=0.0)
    assert ci.estimate == pytest.approx(np.average(y[picked], weights=1 / p))  # Horvitz-Thompson
    assert 0 <= ci.low < ci.high <= 1
