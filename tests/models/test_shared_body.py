"""0/1 labels and categorical variables in one model (the multi-output target): one shared body with a
sigmoid per label and a softmax per variable, or one network per group of outputs (``per_variable``).

Real codes: ECHR argumentative paragraphs (who argues — the Court, the applicant or the State — as a
categorical variable, next to two 0/1 argument types) and the Indian Supreme Court sentences (rhetorical role
and the judgment's area of law, two categorical variables). Fine-tuning uses the tiny random networks of
tests/models/conftest.py.
"""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

torch = pytest.importorskip("torch")

from lexcoder.errors import LexcoderError  # noqa: E402
from lexcoder.models.base import META_FILE, TextClassifier  # noqa: E402
from lexcoder.models.encoder import EncoderClassifier  # noqa: E402
from lexcoder.models.llm import LLMClassifier  # noqa: E402
from lexcoder.models.losses import grouped_loss, multiclass_loss, multilabel_loss  # noqa: E402
from lexcoder.models.outputs import labels_and_variables  # noqa: E402
from lexcoder.models.tfidf import TfidfClassifier  # noqa: E402
from lexcoder.models.transformer import TransformerClassifier  # noqa: E402

AGENTS = ["applicant", "court", "state"]
LABELS = ["subsumption", "precedent_ecthr"]
OUTPUTS = ["agent", *LABELS]
TINY = {"max_length": 40, "batch_size": 8, "eval_batch_size": 32, "lr": 2e-3, "warmup_ratio": 0.0,
        "num_threads": 1, "seed": 0}


@pytest.fixture(scope="module")
def echr(shared_data) -> pd.DataFrame:
    """Short argumentative ECHR paragraphs made by exactly one of the Court, the applicant or the State:
    ``agent`` (categorical) and the 0/1 argument types, with the authors' train/val/test split by judgment."""
    df = pd.read_csv(shared_data("echr_arguments/paragraphs.csv.gz"))
    agents = df[[f"agent_{a}" for a in AGENTS]].to_numpy()
    df = df[(df["is_argument"] == 1) & (agents.sum(axis=1) == 1) & (df["text"].str.len() < 300)].copy()
    df["agent"] = np.asarray(AGENTS)[df[[f"agent_{a}" for a in AGENTS]].to_numpy().argmax(axis=1)]
    return df.reset_index(drop=True)


def _draw(df: pd.DataFrame, per_agent: int, seed: int) -> pd.DataFrame:
    """``per_agent`` paragraphs of each agent, half of the Court's citing precedent (a rarer label)."""
    court = df[df["agent"] == "court"]
    parts = [court[court["precedent_ecthr"] == 1].sample(per_agent // 2, random_state=seed),
             court[court["precedent_ecthr"] == 0].sample(per_agent - per_agent // 2, random_state=seed)]
    parts += [df[df["agent"] == a].sample(per_agent, random_state=seed) for a in AGENTS if a != "court"]
    return pd.concat(parts).sample(frac=1, random_state=seed).reset_index(drop=True)


@pytest.fixture(scope="module")
def small(echr) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train (16 per agent) and validation (8 per agent) paragraphs from different judgments."""
    return _draw(echr[echr["split"] == "train"], 16, 0), _draw(echr[echr["split"] == "val"], 8, 0)


def _fit(klass, name, small, **params):
    train, val = small
    return klass(name=name, **{**TINY, **params}).fit(train["text"], train[OUTPUTS], val["text"], val[OUTPUTS],
                                                       categorical=["agent"])


def _n_params(model: TransformerClassifier) -> int:
    networks = [p.model_ for p in model._parts()] or [model.model_]
    return sum(x.numel() for net in networks for x in net.parameters())


def _check_probabilities(model, texts, n_classes: list[int]) -> list[np.ndarray]:
    P = model.predict_proba(texts)
    assert isinstance(P, list) and [p.shape for p in P] == [(len(texts), k) for k in n_classes]
    for p in P:
        assert p.dtype == np.float64 and ((p >= 0) & (p <= 1)).all()
        np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-6)  # every output: a distribution over its classes
    pred = model.predict(texts)
    assert pred.shape == (len(texts), len(n_classes))
    for j, (p, classes) in enumerate(zip(P, model.classes_)):
        assert list(pred[:, j]) == list(np.asarray(classes)[p.argmax(axis=1)])
    return P


def _same_probabilities(a: list[np.ndarray], b: list[np.ndarray]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


# -- the target --------------------------------------------------------------------------------------
def test_tfidf_fits_every_output_as_if_it_were_alone(echr, tmp_path):
    """TF-IDF has no body to share: each output gets the model it would get on its own target."""
    train, test = echr[echr["split"] == "train"].head(600), echr[echr["split"] == "test"]
    model = TfidfClassifier().fit(train["text"], train[OUTPUTS])  # agent has text values: read as categorical
    assert model.target_type_ == "multiclass-multioutput" and model.label_names_ == OUTPUTS
    assert [list(c) for c in model.classes_] == [AGENTS, [0, 1], [0, 1]]
    P = _check_probabilities(model, test["text"], [3, 2, 2])
    agent_only = TfidfClassifier().fit(train["text"], train["agent"])
    labels_only = TfidfClassifier().fit(train["text"], train[LABELS].to_numpy())
    np.testing.assert_allclose(P[0], agent_only.predict_proba(test["text"]), rtol=0, atol=1e-12)
    P_labels, variables = labels_and_variables(P, model.outputs_)  # how the pipeline reads them
    np.testing.assert_allclose(P_labels, labels_only.predict_proba(test["text"]), rtol=0, atol=1e-12)
    assert list(variables) == ["agent"] and variables["agent"] is P[0]
    model.save(tmp_path / "m")
    meta = json.loads((tmp_path / "m" / META_FILE).read_text())
    assert [o["name"] for o in meta["outputs"]] == OUTPUTS and [o["categorical"] for o in meta["outputs"]] == \
        [True, False, False]
    again = TextClassifier.load(tmp_path / "m")
    assert again.target_type_ == model.target_type_ and [list(c) for c in again.classes_] == [AGENTS, [0, 1], [0, 1]]
    _same_probabilities(again.predict_proba(test["text"]), P)


def test_a_categorical_variable_coded_0_1_stays_a_softmax_when_named(echr):
    train = echr[echr["split"] == "train"].head(400)
    y = train[["agent_court", "subsumption"]]
    named = TfidfClassifier().fit(train["text"], y, categorical=["agent_court"])
    assert [o.categorical for o in named.outputs_] == [True, False]
    assert named._n_columns() == 3  # the variable's two classes, one column for the label
    P = named.predict_proba(train["text"])
    np.testing.assert_allclose(P[0].sum(axis=1), 1.0)
    # its two-class softmax (multinomial regression) ranks as the binary model of that column does
    binary = TfidfClassifier().fit(train["text"], train["agent_court"]).predict_proba(train["text"])
    assert np.corrcoef(P[0][:, 1], binary[:, 1])[0, 1] > 0.99
    # unnamed, a 0/1 matrix stays the multi-label target; categorical=[] asks for a multi-output model
    assert TfidfClassifier().fit(train["text"], y).target_type_ == "multilabel"
    labels_only = TfidfClassifier().fit(train["text"], y, categorical=[])
    assert labels_only.target_type_ == "multiclass-multioutput" and labels_only._n_columns() == 2


def test_bad_targets_get_one_clear_message_naming_the_column(echr):
    train = echr[echr["split"] == "train"].head(120).reset_index(drop=True)
    texts, y = train["text"], train[OUTPUTS]
    cases = [
        (y.assign(agent=y["agent"].where(y.index != 7)), {}, r"'agent' of y has 1 missing value.*row 7"),
        (y.assign(subsumption=y["subsumption"] * 2), {"categorical": ["agent"]},
         r"'subsumption' of y is a 0/1 label but holds \['2'\].*name it in categorical"),
        (y, {"categorical": ["role"]}, r"categorical names 'role'.*\['agent', 'subsumption', 'precedent_ecthr'\]"),
        (y.assign(agent="court"), {"categorical": ["agent"]}, r"'agent' of y holds one class only"),
        (y.assign(agent=[1, "court"] * 60), {}, r"'agent' of y mixes value types"),
        (y, {"label_names": ["a", "a", "b"]}, r"distinct output names"),
    ]
    for bad, kwargs, message in cases:
        with pytest.raises(LexcoderError, match=message):
            TfidfClassifier().fit(texts, bad, **kwargs)
    val = y.head(10).assign(agent="commission")
    with pytest.raises(LexcoderError, match=r"'agent' of val_y holds \['commission'\].*classes seen in training"):
        TfidfClassifier().fit(texts, y, texts.head(10), val)


def test_grouped_loss_is_the_mean_of_each_heads_own_loss():
    """The labels' block takes the multi-label loss, each variable its cross-entropy; all weigh the same."""
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 2 + 3 + 4, generator=g)
    y = torch.zeros(6, 9)
    y[:, :2] = (torch.rand(6, 2, generator=g) > 0.5).float()
    y[torch.arange(6), 2 + torch.randint(0, 3, (6,), generator=g)] = 1
    y[torch.arange(6), 5 + torch.randint(0, 4, (6,), generator=g)] = 1
    groups = [(slice(0, 2), False), (slice(2, 5), True), (slice(5, 9), True)]
    weights = [torch.tensor([2.0, 1.0]), torch.tensor([1.0, 3.0, 1.0]), torch.ones(4)]
    parts = [multilabel_loss(logits[:, :2], y[:, :2], pos_weight=weights[0]),
             multiclass_loss(logits[:, 2:5], y[:, 2:5], weight=weights[1]),
             multiclass_loss(logits[:, 5:], y[:, 5:], weight=weights[2])]
    torch.testing.assert_close(grouped_loss(logits, y, groups, weights), sum(parts) / 3)
    # a head with one group is exactly the single-target model's loss
    assert grouped_loss(logits[:, :2], y[:, :2], groups[:1], weights[:1]).item() == parts[0].item()


# -- one shared body -------------------------------------------------------------------------------
def test_encoder_shares_one_body_among_labels_and_a_variable(tiny_bert, small, tmp_path):
    train, val = small
    model = _fit(EncoderClassifier, tiny_bert, small, max_steps=4)
    assert model.model_.classifier.out_features == 2 + 3  # one logit per label, one per class of agent
    assert [o.name for o in model.outputs_] == OUTPUTS and model.classes_[0].tolist() == AGENTS
    P = _check_probabilities(model, val["text"], [3, 2, 2])
    last = model.history_[-1]
    assert set(last["val_macro_f1_parts"]) == {"labels", "agent"}
    assert last["val_macro_f1"] == pytest.approx(np.mean(list(last["val_macro_f1_parts"].values())), abs=1e-5)
    model.save(tmp_path / "m")
    again = TextClassifier.load(tmp_path / "m")
    assert isinstance(again, EncoderClassifier) and again.target_type_ == "multiclass-multioutput"
    _same_probabilities(again.predict_proba(val["text"]), P)
    copy = clone(model)
    assert copy.get_params() == model.get_params() and "per_variable" in copy.get_params()
    assert not hasattr(copy, "outputs_") and not hasattr(copy, "model_")


def test_per_variable_trains_one_network_per_group_with_twice_the_weights(tiny_bert, small, tmp_path):
    train, val = small
    shared = _fit(EncoderClassifier, tiny_bert, small, max_steps=2)
    model = _fit(EncoderClassifier, tiny_bert, small, max_steps=2, per_variable=True)
    parts = model._parts()
    assert [p.label_names_ for p in parts] == [LABELS, ["agent"]]  # the 0/1 labels together, agent alone
    assert [p.target_type_ for p in parts] == ["multiclass-multioutput"] * 2
    ratio = _n_params(shared) / _n_params(model)
    assert 0.45 < ratio < 0.55  # one body instead of two (heads: a few weights)
    P = _check_probabilities(model, val["text"], [3, 2, 2])
    labels, agent = (p.predict_proba(val["text"]) for p in parts)
    _same_probabilities(P, [agent[0], *labels])  # assembled in the order of the outputs
    model.save(tmp_path / "pv")
    assert (tmp_path / "pv" / "group1" / META_FILE).is_file()
    again = TextClassifier.load(tmp_path / "pv")
    assert len(again._parts()) == 2
    _same_probabilities(again.predict_proba(val["text"]), P)
    per_output = _fit(EncoderClassifier, tiny_bert, small, max_steps=1, per_label=True)
    assert [p.label_names_ for p in per_output._parts()] == [[n] for n in OUTPUTS]


def test_llm_shares_one_body_and_reloads_its_head(tiny_llama, small, tmp_path):
    train, val = small
    shared = _fit(LLMClassifier, tiny_llama, small, max_steps=2, lora_r=4)
    head = [m for n, m in shared.model_.named_modules() if n.endswith("score.modules_to_save.default")][0]
    assert head.out_features == 5
    P = _check_probabilities(shared, val["text"], [3, 2, 2])
    shared.save(tmp_path / "llm")
    _same_probabilities(TextClassifier.load(tmp_path / "llm").predict_proba(val["text"]), P)
    separate = _fit(LLMClassifier, tiny_llama, small, max_steps=2, lora_r=4, per_variable=True)
    assert 0.45 < _n_params(shared) / _n_params(separate) < 0.55
    separate.save(tmp_path / "llm_pv")
    _same_probabilities(TextClassifier.load(tmp_path / "llm_pv").predict_proba(val["text"]),
                        separate.predict_proba(val["text"]))


def test_two_categorical_variables_get_a_softmax_each(tiny_bert, shared_data):
    """Rhetorical role (7 classes) and the judgment's area of law (5) of Indian Supreme Court sentences."""
    df = pd.read_csv(shared_data("indian_sc_rhetorical_roles/texts.csv.gz"))
    df = df[df["text"].str.len() < 300]
    train = df[df["fold"] == 0].groupby("label").head(6)
    train = pd.concat([train, df[df["fold"] == 0].groupby("legal_area").head(3)])
    model = EncoderClassifier(name=tiny_bert, **TINY, max_steps=2, pooling="mean", stride=8)
    model.fit(train["text"], train[["label", "legal_area"]])
    assert [soft for _, soft in model._link_groups()] == [True, True]
    texts = df[df["fold"] == 1]["text"].head(20).tolist() + ["A long sentence of the judgment. " * 12]
    _check_probabilities(model, texts, [7, 5])  # a multi-window text too: mean pooling within each softmax


def test_tfidf_blend_keeps_each_variable_a_distribution(tiny_bert, small):
    train, val = small
    model = _fit(EncoderClassifier, tiny_bert, small, max_steps=1, blend_tfidf=0.5)
    assert model.tfidf_.target_type_ == "multiclass-multioutput"
    _check_probabilities(model, val["text"], [3, 2, 2])


def test_negative_ratio_needs_separate_networks(tiny_bert, small):
    with pytest.raises(LexcoderError, match="negative_ratio applies to 0/1 labels.*per_variable = true"):
        _fit(EncoderClassifier, tiny_bert, small, max_steps=1, negative_ratio=1.0)
    model = _fit(EncoderClassifier, tiny_bert, small, max_steps=1, negative_ratio=1.0, per_variable=True)
    assert [p.negative_ratio for p in model._parts()] == [1.0, None]  # the labels' network only


# -- checkpoints -----------------------------------------------------------------------------------
def _interrupt_at(step: int, seen: list[int]):
    def after_step(self, current):
        seen.append(current)
        if current == step and seen.count(step) == 1:
            raise KeyboardInterrupt
    return after_step


@pytest.mark.parametrize("per_variable", [False, True])
def test_resume_from_a_checkpoint_gives_the_uninterrupted_result(per_variable, tiny_bert, small, tmp_path,
                                                                 monkeypatch):
    train, val = small
    params = {**TINY, "epochs": 1, "checkpoint_steps": 1, "patience": None, "per_variable": per_variable}
    expected = EncoderClassifier(name=tiny_bert, **params).fit(train["text"], train[OUTPUTS], categorical=["agent"])
    steps: list[int] = []
    monkeypatch.setattr(TransformerClassifier, "_after_step", _interrupt_at(3, steps))
    model = EncoderClassifier(name=tiny_bert, **params)
    model.checkpoint_dir = tmp_path / "ckpt"
    with pytest.raises(KeyboardInterrupt):
        model.fit(train["text"], train[OUTPUTS], categorical=["agent"])
    resumed = EncoderClassifier(name=tiny_bert, **params)
    resumed.checkpoint_dir = tmp_path / "ckpt"
    resumed.fit(train["text"], train[OUTPUTS], categorical=["agent"])
    per_network = len(train) // TINY["batch_size"]
    # only the steps after the last checkpoint are trained again (and, per variable, the second network)
    second = list(range(1, per_network + 1)) if per_variable else []
    assert steps == [1, 2, 3] + list(range(4, per_network + 1)) + second
    _same_probabilities(resumed.predict_proba(val["text"]), expected.predict_proba(val["text"]))


# -- learning on real text -------------------------------------------------------------------------
@pytest.mark.slow  # several seconds on 2 cores: CI runs it (make test); the quick suite (-m 'not slow') does not
def test_the_shared_body_learns_both_heads(tiny_bert, echr):
    """Who argues (the Court or the applicant) and whether the Court cites its precedent: 300 paragraphs,
    3 epochs of a tiny random network learn both, on paragraphs of other judgments."""
    from sklearn.metrics import roc_auc_score
    two = echr[echr["agent"].isin(["court", "applicant"])]

    def draw(df, n):
        court = df[df["agent"] == "court"]
        return pd.concat([court[court["precedent_ecthr"] == 1].sample(n // 2, random_state=0),
                          court[court["precedent_ecthr"] == 0].sample(n // 2, random_state=0),
                          df[df["agent"] == "applicant"].sample(n, random_state=0)]).sample(frac=1, random_state=0)
    train, test = draw(two[two["split"] == "train"], 150), draw(two[two["split"] != "train"], 50)
    model = EncoderClassifier(name=tiny_bert, **{**TINY, "max_length": 48, "batch_size": 16, "epochs": 3,
                                                 "patience": None})
    model.fit(train["text"], train[["agent", "precedent_ecthr"]], categorical=["agent"])
    losses = [h["train_loss"] for h in model.history_]
    assert losses == sorted(losses, reverse=True) and losses[-1] < losses[0]  # each epoch's mean loss falls
    P = model.predict_proba(test["text"])
    assert roc_auc_score(test["agent"] == "court", P[0][:, 1]) > 0.75
    court = (test["agent"] == "court").to_numpy()  # within the Court's paragraphs: not a proxy for the agent
    assert roc_auc_score(test["precedent_ecthr"][court], P[1][court, 1]) > 0.75
