"""bfloat16 CPU inference by capability: detection, the validation check after training, the saved decision,
and the probabilities bf16 gives next to float32 (tiny random BERT trained on real ToS sentences)."""
from __future__ import annotations

import copy

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from lexcoder.errors import ConfigError, InvalidSettingError  # noqa: E402
from lexcoder.models import load_model  # noqa: E402
from lexcoder.models import torch_runtime  # noqa: E402
from lexcoder.models.encoder import EncoderClassifier  # noqa: E402
from lexcoder.models.torch_runtime import BF16_ENV, cpu_has_bf16  # noqa: E402

LABELS = ["limitation_of_liability", "unilateral_termination"]
SETTINGS = {"head": "cls", "max_length": 48, "batch_size": 16, "eval_batch_size": 64, "epochs": 2, "lr": 1e-3,
            "warmup_ratio": 0.0, "num_threads": 1, "seed": 0, "patience": None}
# largest probability difference bf16 autocast may make on these models (measured: 1.2e-4 on an AMX Xeon;
# the margin is for other CPUs' bf16 kernels, which round differently)
PROB_TOLERANCE = 2e-3
HAS_BF16 = cpu_has_bf16()  # at import: before any test sets the override


@pytest.fixture(scope="module")
def data(tos_full):
    """300 training and 150 validation sentences of disjoint ToS documents, a third with a code."""
    docs = sorted(tos_full["doc_id"].unique())
    def part(df, n, seed):
        has = df[LABELS].sum(axis=1) > 0
        return (df[has].sample(n // 3, random_state=seed), df[~has].sample(n - n // 3, random_state=seed))
    tr, va = tos_full[tos_full["doc_id"].isin(docs[:40])], tos_full[tos_full["doc_id"].isin(docs[40:])]
    import pandas as pd
    train, val = pd.concat(part(tr, 300, 0)), pd.concat(part(va, 150, 0))
    return (train["text"].tolist(), train[LABELS].to_numpy(), val["text"].tolist(), val[LABELS].to_numpy())


def _fit(tiny_bert, data, **settings) -> EncoderClassifier:
    texts, Y, val_texts, val_Y = data
    model = EncoderClassifier(name=tiny_bert, **{**SETTINGS, **settings})
    return model.fit(texts, Y, val_texts, val_Y, label_names=LABELS)


def _probabilities(model: EncoderClassifier, texts: list[str], bf16: bool) -> np.ndarray:
    return copy.deepcopy(model).set_params(inference_bf16=bf16).predict_proba(texts)


@pytest.mark.parametrize("value, expected", [("1", True), ("true", True), ("0", False), ("false", False)])
def test_detection_is_a_bool_that_the_environment_overrides(monkeypatch, value, expected):
    monkeypatch.delenv(BF16_ENV, raising=False)
    assert isinstance(cpu_has_bf16(), bool)
    monkeypatch.setenv(BF16_ENV, value)
    assert cpu_has_bf16() is expected


def test_a_bad_override_is_a_config_error(monkeypatch):
    monkeypatch.setenv(BF16_ENV, "maybe")
    with pytest.raises(ConfigError, match=BF16_ENV):
        cpu_has_bf16()


def test_capable_cpu_checks_records_bf16_and_predict_uses_it(tiny_bert, data, monkeypatch, tmp_path):
    monkeypatch.setenv(BF16_ENV, "1")
    monkeypatch.setattr(torch_runtime, "BF16_MAX_F1_CHANGE", 1.0)  # a check every model passes
    model = _fit(tiny_bert, data)
    decision = model.inference_precision_
    assert decision["checked"] and decision["cpu_bf16_capable"] and decision["precision"] == "bf16"
    assert decision["seconds_fp32"] > 0 and decision["seconds_bf16"] > 0  # the check's two timed passes
    assert decision["macro_f1_change"] == pytest.approx(decision["macro_f1_bf16"] - decision["macro_f1_fp32"],
                                                        abs=2e-6)
    val_texts = data[2]
    P32, P16 = _probabilities(model, val_texts, False), _probabilities(model, val_texts, True)
    assert not np.array_equal(P32, P16)  # the two precisions are distinguishable on these texts
    assert decision["max_abs_prob_diff"] == pytest.approx(np.abs(P16 - P32).max(), abs=1e-7)
    np.testing.assert_array_equal(model.predict_proba(val_texts), P16)  # "auto" follows the decision
    model.save(tmp_path / "m")
    again = load_model(tmp_path / "m")
    assert again.inference_precision_ == decision and again.inference_bf16 == "auto"
    np.testing.assert_array_equal(again.predict_proba(val_texts), P16)
    monkeypatch.setenv(BF16_ENV, "0")  # the same saved model on a CPU without bf16 units: float32
    np.testing.assert_array_equal(load_model(tmp_path / "m").predict_proba(val_texts), P32)


def test_a_failed_check_chooses_fp32(tiny_bert, data, monkeypatch):
    monkeypatch.setenv(BF16_ENV, "1")
    monkeypatch.setattr(torch_runtime, "BF16_MAX_F1_CHANGE", -1.0)  # a check no model passes
    model = _fit(tiny_bert, data, epochs=1)
    decision = model.inference_precision_
    assert decision["checked"] and decision["precision"] == "fp32" and "beyond" in decision["reason"]
    np.testing.assert_array_equal(model.predict_proba(data[2]), _probabilities(model, data[2], False))


def test_no_check_without_capability_or_validation_texts(tiny_bert, data, monkeypatch):
    monkeypatch.setenv(BF16_ENV, "0")
    model = _fit(tiny_bert, data, epochs=1, max_steps=2)
    assert model.inference_precision_["precision"] == "fp32" and not model.inference_precision_["checked"]
    monkeypatch.setenv(BF16_ENV, "1")  # capable, but nothing to check on: float32
    no_val = EncoderClassifier(name=tiny_bert, **{**SETTINGS, "max_steps": 2}).fit(data[0], data[1],
                                                                                   label_names=LABELS)
    assert no_val.inference_precision_["precision"] == "fp32" and not no_val.inference_precision_["checked"]
    np.testing.assert_array_equal(no_val.predict_proba(data[2]), _probabilities(no_val, data[2], False))


def test_the_setting_forces_a_precision_and_int8_is_not_combined_with_auto(tiny_bert, data, monkeypatch):
    monkeypatch.setenv(BF16_ENV, "1")
    monkeypatch.setattr(torch_runtime, "BF16_MAX_F1_CHANGE", 1.0)
    forced = _fit(tiny_bert, data, epochs=1, max_steps=3, inference_bf16=False)
    assert forced.inference_precision_ == {**forced.inference_precision_, "precision": "fp32", "checked": False}
    auto = copy.deepcopy(forced).set_params(inference_bf16="auto")
    auto.inference_precision_ = {"precision": "bf16"}
    texts = data[2][:40]
    np.testing.assert_array_equal(auto.predict_proba(texts), _probabilities(forced, texts, True))
    int8 = copy.deepcopy(auto).set_params(quantize_int8=True)  # int8 asked for: no bf16 on top of it
    both = copy.deepcopy(forced).set_params(quantize_int8=True)
    np.testing.assert_array_equal(int8.predict_proba(texts), both.predict_proba(texts))
    with pytest.raises(InvalidSettingError, match="inference_bf16"):
        _fit(tiny_bert, data, inference_bf16="fast")


@pytest.mark.skipif(not HAS_BF16, reason="this CPU has no native bfloat16 matrix units")
def test_bf16_probabilities_are_close_to_fp32(tiny_bert, data, monkeypatch):
    monkeypatch.setattr(torch_runtime, "BF16_MAX_F1_CHANGE", 1.0)
    model = _fit(tiny_bert, data, epochs=1)
    P32, P16 = _probabilities(model, data[2], False), _probabilities(model, data[2], True)
    assert np.abs(P16 - P32).max() <= PROB_TOLERANCE
    assert not np.array_equal(P16, P32)
