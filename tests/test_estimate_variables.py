"""Class shares of a categorical variable (`lexcoder estimate` on `class_columns`): naive, classical and PPI++
estimates whose intervals hold for all classes at once — on the Indian Supreme Court rhetorical roles (7
roles, one per sentence), coded by a TF-IDF model trained on other judgments."""
from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from threadpoolctl import threadpool_limits
from typer.testing import CliRunner

import lexcoder
from lexcoder.cli import app
from lexcoder.config import config_from_dict, dump_config
from lexcoder.estimate import estimate_prevalence, estimate_shares
from lexcoder.io import write_json
from lexcoder.predict import predict_file
from lexcoder.rundir import THRESHOLDS_FILE, RunDir

runner = CliRunner()
PARAMS = {"C": 1.0, "max_features": 5000}  # a quick model: the estimates are valid for any model


@pytest.fixture(scope="module")
def roles(shared_data) -> pd.DataFrame:
    df = pd.read_csv(shared_data("indian_sc_rhetorical_roles/texts.csv.gz"))
    return df.rename(columns={"label": "role"}).assign(facts=lambda d: (d["role"] == "Facts").astype(int))


def _run(root: Path, train: pd.DataFrame, *, labels: bool) -> RunDir:
    """A finished run as `lexcoder run` leaves it for `predict` and `estimate`: config, manifest (with the
    classes) and the saved models (a TF-IDF model per variable; with ``labels`` the 0/1 label `facts` too)."""
    data = {"path": str(root / "train.csv"), "id_column": "id", "class_columns": ["role"]}
    cfg = config_from_dict({"data": data | ({"label_columns": ["facts"]} if labels else {}),
                            "model": {"params": PARAMS}})
    run = RunDir(root / ("mixed" if labels else "variables"))
    run.root.mkdir()
    run.config.write_text(dump_config(cfg), encoding="utf-8")
    with threadpool_limits(1):  # lbfgs on many BLAS threads crawls on a shared 2-core machine
        model = lexcoder.build_model("tfidf", params=PARAMS).fit(train["text"].tolist(), train["role"].to_numpy())
        model.save(run.variable_model_dir("tfidf", "role"))
        if labels:
            facts = lexcoder.build_model("tfidf", params=PARAMS).fit(
                train["text"].tolist(), train[["facts"]].to_numpy(), label_names=["facts"])
            facts.save(run.model_dir("tfidf"))
            write_json({"thresholds": {"facts": 0.5}}, run.model_dir("tfidf") / THRESHOLDS_FILE)
    run.update_manifest(data={"classes": {"role": sorted(train["role"].unique().tolist())}})
    return run


@pytest.fixture(scope="module")
def coded(tmp_path_factory, roles):
    """Runs trained on the judgments of fold 0; the corpus (folds 2-3, true roles known) coded by
    `lexcoder predict`; a 500-sentence random gold sample with the human-coded role."""
    root = tmp_path_factory.mktemp("shares")
    train = roles[roles["fold"] == 0]
    train.to_csv(root / "train.csv", index=False)
    mixed, variables = _run(root, train, labels=True), _run(root, train, labels=False)
    corpus = roles[roles["fold"].isin([2, 3])].reset_index(drop=True)
    corpus[["id", "group", "text"]].to_csv(root / "corpus.csv", index=False)
    with threadpool_limits(1):
        predict_file(mixed.root, root / "corpus.csv", root / "coded.csv")
    corpus.sample(n=500, random_state=3)[["id", "role", "facts"]].to_csv(root / "gold.csv", index=False)
    return variables.root, mixed.root, root / "coded.csv", root / "gold.csv", corpus


def _estimate(run, corpus, gold, *extra):
    res = runner.invoke(app, ["estimate", str(run), "--corpus", str(corpus), "--gold", str(gold), *extra])
    res.text = " ".join(res.output.split())  # rich wraps long lines
    return res


def _classes(corpus: pd.DataFrame) -> list[str]:
    return sorted(corpus["role"].unique())


def test_variables_only_run_from_the_cli(coded, tmp_path):
    run, _, corpus_path, gold_path, corpus = coded
    res = _estimate(run, corpus_path, gold_path, "--out", str(tmp_path / "shares.csv"))
    assert res.exit_code == 0, res.output
    assert "Share of each class" in res.text and "all 7 classes at once (Bonferroni" in res.text
    table = pd.read_csv(tmp_path / "shares.csv")
    assert "label" not in table.columns
    assert table["variable"].eq("role").all() and table["class"].tolist() == _classes(corpus)
    assert (table["n_corpus"] == len(corpus)).all() and (table["n_gold"] == 500).all()
    gold = pd.read_csv(gold_path)
    assert table["gold_positives"].tolist() == gold["role"].value_counts().reindex(_classes(corpus)).tolist()
    truth = corpus["role"].value_counts(normalize=True).reindex(table["class"]).to_numpy()
    for method in ("classical", "ppi"):  # simultaneous 95% intervals: all 7 cover at once
        assert ((table[f"{method}_low"] <= truth) & (truth <= table[f"{method}_high"])).all(), (method, truth)
    assert not ((table["naive_low"] <= truth) & (truth <= table["naive_high"])).all()  # the model's codes alone
    # every point strictly inside (0, 1) (nothing clipped), so the 7 shares of each method sum to 1
    assert ((table[["naive", "classical", "ppi"]] > 0) & (table[["naive", "classical", "ppi"]] < 1)).all().all()
    assert table[["naive", "classical", "ppi"]].sum().to_numpy() == pytest.approx([1, 1, 1], abs=1e-9)


def test_simultaneous_intervals_are_wider_than_per_class_ones(coded):
    _, _, corpus_path, gold_path, corpus = coded
    frames = pd.read_csv(corpus_path), pd.read_csv(gold_path)
    both = estimate_shares(*frames, {"role": _classes(corpus)})
    each = estimate_shares(*frames, {"role": _classes(corpus)}, simultaneous=False)
    for method in ("naive", "classical", "ppi"):
        assert np.allclose(both[method], each[method])
        width = lambda t: t[f"{method}_high"] - t[f"{method}_low"]  # noqa: E731
        assert (width(both) > width(each)).all()
    assert each["method"].str.endswith("each class on its own").all()
    res = _estimate(coded[0], corpus_path, gold_path, "--per-class")
    assert res.exit_code == 0 and "for each class on its own" in res.text


def test_ppi_points_are_ppi_py_d_dimensional_mean(coded):
    """One power-tuning weight for all classes: ppi_py's estimate of the 7-dimensional mean of the class
    indicators (its default, lam_optim_mode="overall"), with and without sampling weights."""
    import ppi_py
    _, _, corpus_path, gold_path, corpus = coded
    classes, frame, gold = _classes(corpus), pd.read_csv(corpus_path), pd.read_csv(gold_path)
    gold["p"] = np.where(gold["role"] == "Facts", 0.5, 0.1)
    probs = [f"role_prob_{c}" for c in classes]
    at_gold = frame.set_index("id").loc[gold["id"], probs].to_numpy()
    Y = (gold["role"].to_numpy()[:, None] == np.asarray(classes)[None, :]).astype(float)
    for weights in (None, "p"):
        table = estimate_shares(frame, gold, {"role": classes}, weight_column=weights)
        w = None if weights is None else 1 / gold["p"].to_numpy()
        ref = ppi_py.ppi_mean_pointestimate(Y, at_gold, frame[probs].to_numpy(), w=w)
        assert table["ppi"].to_numpy() == pytest.approx(np.clip(ref, 0, 1), abs=1e-12)


def test_oversampled_gold_with_inclusion_probabilities(coded):
    """Sentences the model codes as Facts were sampled 6x as often: weights undo the bias."""
    _, _, corpus_path, _, corpus = coded
    frame, classes = pd.read_csv(corpus_path), _classes(corpus)
    p = np.where(frame["role_pred"] == "Facts", 0.3, 0.05)
    take = np.random.default_rng(8).random(len(frame)) < p
    gold = corpus.set_index("id").loc[frame["id"][take], ["role"]].reset_index().assign(incl=p[take])
    truth = corpus["role"].value_counts(normalize=True).reindex(classes).to_numpy()
    weighted = estimate_shares(frame, gold, {"role": classes}, weight_column="incl")
    plain = estimate_shares(frame, gold, {"role": classes})
    facts = classes.index("Facts")
    assert gold["role"].eq("Facts").mean() > 1.5 * truth[facts]
    assert abs(plain["classical"][facts] - truth[facts]) > abs(weighted["classical"][facts] - truth[facts])
    assert ((weighted["ppi_low"] <= truth) & (truth <= weighted["ppi_high"])).all()
    # two inclusion probabilities, no stratum column: rows of equal probability taken as strata (design-based)
    assert weighted["method"].str.startswith("PPI++ (design-based: stratified").all()
    assert weighted["ppi"].sum() == pytest.approx(1)


def test_mixed_run_gives_one_table_with_labels_and_classes(coded, tmp_path):
    _, run, corpus_path, gold_path, corpus = coded
    res = _estimate(run, corpus_path, gold_path, "--by", "group", "--out", str(tmp_path / "all.parquet"))
    assert res.exit_code == 0, res.output
    assert "Prevalence in the corpus" in res.text and "Share of each class" in res.text
    table = pd.read_parquet(tmp_path / "all.parquet")
    assert table.columns[:4].tolist() == ["group", "label", "variable", "class"]
    labels, shares = table[table["label"].notna()], table[table["variable"].notna()]
    assert set(labels["label"]) == {"facts"} and labels["class"].isna().all()
    assert len(shares) == 7 * corpus["group"].nunique() and shares["label"].isna().all()
    frames = pd.read_csv(corpus_path), pd.read_csv(gold_path)
    alone = estimate_prevalence(*frames, ["facts"], by="group")
    assert np.allclose(labels["ppi"], alone["ppi"], equal_nan=True)
    sizes = shares.groupby("class")["n_corpus"].sum()
    assert (sizes == len(corpus)).all()
    assert (shares.groupby("class")["n_gold"].sum() == 500).all()
    res = _estimate(run, corpus_path, gold_path, "--labels", "role", "--out", str(tmp_path / "role.csv"))
    assert res.exit_code == 0 and "label" not in pd.read_csv(tmp_path / "role.csv").columns
    res = _estimate(run, corpus_path, gold_path, "--labels", "rol")
    assert res.exit_code == 2 and "'rol' is neither a label nor a categorical variable" in res.text
    assert "did you mean 'role'" in res.text


def test_yhat_pred_uses_the_predicted_class(coded):
    _, _, corpus_path, gold_path, corpus = coded
    frames = pd.read_csv(corpus_path), pd.read_csv(gold_path)
    by_pred = estimate_shares(*frames, {"role": _classes(corpus)}, yhat="pred")
    by_prob = estimate_shares(*frames, {"role": _classes(corpus)})
    assert np.allclose(by_pred["naive"], by_prob["naive"])  # the share of texts coded as the class, either way
    assert np.allclose(by_pred["naive"], frames[0]["role_pred"].value_counts(normalize=True).reindex(_classes(corpus)))
    assert not np.allclose(by_pred["ppi"], by_prob["ppi"])
    assert by_pred["ppi"].sum() == pytest.approx(1)


def test_classes_written_as_numbers_match_whatever_the_file_made_of_them(coded):
    """A run whose classes are 1..7: the gold file may hold 1.0, "1" or 1 (as at training)."""
    _, _, corpus_path, gold_path, corpus = coded
    classes = _classes(corpus)
    number = {c: i + 1 for i, c in enumerate(classes)}
    frame = pd.read_csv(corpus_path).rename(columns={f"role_prob_{c}": f"role_prob_{number[c]}" for c in classes})
    frame["role_pred"] = frame["role_pred"].map(number)  # int column, as a CSV gives it back
    gold = pd.read_csv(gold_path).assign(role=lambda g: g["role"].map(number).astype(float).astype(object))
    gold.loc[::2, "role"] = gold.loc[::2, "role"].astype(int).astype(str).to_numpy()  # 1.0 and "1" mixed
    as_numbers = estimate_shares(frame, gold, {"role": [str(i + 1) for i in range(7)]})
    as_text = estimate_shares(pd.read_csv(corpus_path), pd.read_csv(gold_path), {"role": classes})
    assert as_numbers["class"].tolist() == ["1", "2", "3", "4", "5", "6", "7"]
    for col in ("naive", "classical", "ppi", "ppi_low", "ppi_high", "gold_positives"):
        assert np.allclose(as_numbers[col], as_text[col]), col


def test_error_gold_value_that_is_not_a_class(coded, tmp_path):
    run, _, corpus_path, gold_path, _ = coded
    gold = pd.read_csv(gold_path)
    gold.loc[[4, 9], "role"] = ["Dissent", "facts"]
    gold.to_csv(tmp_path / "g.csv", index=False)
    res = _estimate(run, corpus_path, tmp_path / "g.csv")
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert "g.csv: column 'role' holds ['Dissent', 'facts'] in rows 5, 10" in res.text
    assert "'Ruling by Present Court'" in res.text  # the valid classes are listed


def test_error_gold_without_a_class(coded, tmp_path):
    run, _, corpus_path, gold_path, _ = coded
    pd.read_csv(gold_path).assign(role=lambda g: g["role"].where(g.index != 7)).to_csv(tmp_path / "g.csv", index=False)
    res = _estimate(run, corpus_path, tmp_path / "g.csv")
    assert res.exit_code == 2 and "column 'role' holds ['(empty)'] in rows 8" in res.text


def test_error_corpus_without_a_class_probability(coded, tmp_path):
    run, _, corpus_path, gold_path, _ = coded
    pd.read_csv(corpus_path).drop(columns=["role_prob_Statute"]).to_csv(tmp_path / "c.csv", index=False)
    res = _estimate(run, tmp_path / "c.csv", gold_path)
    assert res.exit_code == 2
    assert "c.csv: missing column(s) ['role_prob_Statute']" in res.text and "lexcoder predict" in res.text


def test_error_run_without_its_classes(coded, tmp_path):
    run, _, corpus_path, gold_path, _ = coded
    shutil.copytree(run, tmp_path / "run")
    (tmp_path / "run" / "manifest.json").write_text("{}")
    res = _estimate(tmp_path / "run", corpus_path, gold_path)
    assert res.exit_code == 2 and "does not list the classes of 'role'" in res.text


def test_regress_refuses_a_categorical_variable(coded):
    _, run, corpus_path, gold_path, _ = coded
    for flags in (["--outcome", "role", "--on", "facts"], ["--outcome", "facts", "--on", "role"]):
        res = runner.invoke(app, ["regress", str(run), "--corpus", str(corpus_path), "--gold", str(gold_path), *flags])
        text = " ".join(res.output.split())
        assert res.exit_code == 2 and "'role' is a categorical variable (class_columns)" in text, text


def _simulate_shares():
    """benchmarks/bench_ppi_coverage.py's simulator of repeated gold samples (benchmark code; the
    intervals it checks are lexcoder's)."""
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_ppi_coverage.py"
    spec = importlib.util.spec_from_file_location("bench_ppi_coverage", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.simulate_shares


@pytest.mark.slow  # 2 x 60 estimates
def test_simultaneous_intervals_cover_all_classes_at_once(coded):
    _, _, corpus_path, _, corpus = coded
    frame = pd.read_csv(corpus_path).merge(corpus[["id", "role"]].astype({"id": str}), on="id")
    res = _simulate_shares()(frame, _classes(corpus), n_gold=300, reps=60, seed=1).set_index(["method", "intervals"])
    # 60 repetitions: a 95% target allows about 2 SE (2.8 points) below it
    assert res.loc[("ppi", "simultaneous"), "all_cover"] >= 0.9
    assert res.loc[("ppi", "per_class"), "all_cover"] < res.loc[("ppi", "simultaneous"), "all_cover"]
    assert res.loc[("naive", "per_class"), "all_cover"] < 0.2
