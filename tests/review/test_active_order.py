"""The review desk's "code new texts" queue in active-learning order (`lexcoder review --order active`)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from lexcoder.active import choose_batch
from lexcoder.active.provenance import BATCH_COLUMN, check_gold_provenance
from lexcoder.clean import clean_text
from lexcoder.cli import app
from lexcoder.errors import DataError
from lexcoder.review import load_texts, open_run_store
from lexcoder.review.export import coded_table
from lexcoder.rundir import RunDir


def _choose_batch_order(run_dir, texts: pd.Series, n: int) -> list[int]:
    """What `lexcoder next` would choose among ``texts``: the run's model scores them, choose_batch orders."""
    run = RunDir(run_dir)
    cfg = run.load_config()
    labels = list(cfg.data.label_columns)
    model, thresholds = run.load_model()[:2]
    cleaned = [clean_text(t, cfg.clean) for t in texts]
    data = run.read_table(run.data)
    batch = choose_batch(cleaned, n, probs=model.predict_proba(cleaned), thresholds=thresholds, labels=labels,
                         n_positive=data[labels].sum().to_numpy(), coded_texts=data["text"].tolist(), seed=0)
    return batch["row"].tolist()


def _queue(store) -> list[str]:
    items = store.items_table("code")
    return items.sort_values("rank")["text_id"].astype(str).tolist()


def test_active_order_is_choose_batchs_order(run_dir, new_texts):
    texts = pd.read_csv(new_texts)
    store = open_run_store(run_dir)
    assert load_texts(store, run_dir, new_texts, order="active") == len(texts)
    order = _choose_batch_order(run_dir, texts["text"], len(texts))
    chosen = texts["id"].astype(str).iloc[order].tolist()
    assert _queue(store)[:len(chosen)] == chosen
    assert set(_queue(store)) == set(texts["id"].astype(str))  # near-duplicates left out of a batch come last
    # the same order as a random one would be a sign the model was not asked
    assert chosen != texts["id"].astype(str).iloc[np.random.default_rng(0).permutation(len(texts))].tolist()


def test_active_order_with_a_limit_loads_the_batch_next_would_hand_out(run_dir, new_texts, tmp_path):
    texts = pd.read_csv(new_texts)
    res = CliRunner().invoke(app, ["review", str(run_dir), "--texts", str(new_texts), "--order", "active",
                                   "--limit", "12", "--export-table", str(tmp_path / "coded.csv")])
    assert res.exit_code == 0, res.output
    assert "12 new text(s) to code" in res.output
    order = _choose_batch_order(run_dir, texts["text"], 12)
    assert _queue(open_run_store(run_dir)) == texts["id"].astype(str).iloc[order].tolist()


def test_texts_coded_in_active_order_are_refused_as_a_gold_sample(run_dir, new_texts):
    """The coded table keeps the provenance: it can train a model, but an estimate refuses it as gold."""
    texts = pd.read_csv(new_texts)
    store = open_run_store(run_dir)
    load_texts(store, run_dir, new_texts, order="active", limit=3)
    coded = coded_table(store)
    assert coded[BATCH_COLUMN].eq("review desk").all() and len(coded) == 3
    with pytest.raises(DataError, match="chosen by `lexcoder next`"):
        check_gold_provenance(coded, None, "coded.csv")
    other = texts[~texts["id"].astype(str).isin(coded["id"])].head(2)
    random_file = run_dir.parent / "random_texts.csv"
    other.to_csv(random_file, index=False)
    load_texts(store, run_dir, random_file, order="random")
    coded = coded_table(store).set_index("id")
    assert set(coded.index[coded[BATCH_COLUMN] == ""]) == set(other["id"].astype(str))
