"""Fine-tuned families read context as one window: ``prefix [SEP] previous [SEP] text [SEP] next``, centred on
the text (tiny random BERT / Llama, Indian Supreme Court rhetorical roles)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lexcoder.config import config_from_dict
from lexcoder.context import model_inputs, take
from lexcoder.errors import LexcoderError
from lexcoder.models import load_model
from lexcoder.models.encoder import EncoderClassifier
from lexcoder.models.inputs import ContextTexts, encode_inputs

FAST = {"max_length": 48, "batch_size": 8, "eval_batch_size": 32, "lr": 1e-3, "warmup_ratio": 0.0,
        "num_threads": 1, "seed": 3, "max_steps": 3, "patience": None}


@pytest.fixture(scope="module")
def roles(shared_data) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Three short judgments with their context inputs (window 1, position, legal area)."""
    df = pd.read_csv(shared_data("indian_sc_rhetorical_roles/texts.csv.gz"))
    df = df[df["group"].isin(df["group"].value_counts().sort_values().index[:3])].reset_index(drop=True)
    cfg = config_from_dict({"data": {"path": "x.csv", "group_column": "group", "class_columns": ["label"]},
                            "context": {"order_column": "sent_idx", "metadata_columns": ["legal_area"]}})
    return df, model_inputs(df, cfg)


def _tokenizer(path: str):
    from transformers import AutoTokenizer
    return AutoTokenizer.from_pretrained(path)


def test_a_window_holds_the_whole_text_and_what_fits_of_its_neighbours(tiny_bert, roles):
    _, inputs = roles
    tok, length = _tokenizer(tiny_bert), 96
    enc = encode_inputs(tok, ContextTexts(inputs), max_length=length, stride=8)
    words = lambda s: tok(s, add_special_tokens=False)["input_ids"]  # noqa: E731
    sep, cls = tok.sep_token_id, tok.cls_token_id
    prefixes = [words(f"position: {round(100 * p)}%; legal_area: {a}") for p, a in
                zip(inputs["position"], inputs["legal_area"])]
    fits = [i for i in range(len(inputs)) if len(words(inputs["text"][i])) + len(prefixes[i]) + 3 + 2 <= length]
    assert len(fits) > len(inputs) / 2 and max(map(len, enc.ids)) <= length
    for i in fits:
        assert (enc.owner == i).sum() == 1
        window = enc.ids[int(np.flatnonzero(enc.owner == i)[0])]
        assert window[0] == cls and window[-1] == sep
        body = window[1:-1]
        seps = [k for k, t in enumerate(body) if t == sep]
        assert len(seps) == 3  # prefix | previous | text | next
        prefix, before, text, after = (body[:seps[0]], body[seps[0] + 1:seps[1]], body[seps[1] + 1:seps[2]],
                                       body[seps[2] + 1:])
        assert text == words(inputs["text"][i]) and prefix == prefixes[i]  # the text is never cut
        previous, following = words(inputs["previous"][i]), words(inputs["next"][i])
        assert before == previous[len(previous) - len(before):]  # the previous text keeps its end
        assert after == following[:len(after)]  # the next one its start
        if len(before) < len(previous) or len(after) < len(following):
            assert len(window) == length  # neighbours were cut only because the window is full
    alone = set(range(len(inputs))) - set(fits)
    assert alone  # (three judgments hold sentences too long for a window with context)
    for i in alone:  # no room for context: the text's own windows
        own = tok(inputs["text"][i], truncation=True, max_length=length, stride=8, return_overflowing_tokens=True)
        assert [enc.ids[k] for k in np.flatnonzero(enc.owner == i)] == list(own["input_ids"])


def test_a_tokenizer_without_a_separator_token_gets_a_text_one(tiny_llama, roles):
    _, inputs = roles
    tok = _tokenizer(tiny_llama)
    assert tok.sep_token_id is None
    enc = encode_inputs(tok, ContextTexts(inputs.head(20)), max_length=64, stride=8)
    marker = tok(" | ", add_special_tokens=False)["input_ids"]
    assert marker and all(len(w) <= 64 for w in enc.ids)
    window = enc.ids[int(np.flatnonzero(enc.owner == 5)[0])]
    text = tok(inputs["text"][5], add_special_tokens=False)["input_ids"]
    assert any(window[k:k + len(text)] == text for k in range(len(window)))


@pytest.mark.slow  # a few seconds: three tiny fine-tuning steps, a save and a reload
def test_a_tiny_encoder_trains_and_predicts_with_context(tiny_bert, roles, tmp_path):
    df, inputs = roles
    y = df["label"].to_numpy()
    train, val = (df["group"] != df["group"].iloc[-1]).to_numpy(), (df["group"] == df["group"].iloc[-1]).to_numpy()
    model = EncoderClassifier(name=tiny_bert, **FAST).fit(take(inputs, train), y[train], take(inputs, val), y[val])
    P = model.predict_proba(take(inputs, val))
    assert P.shape == (val.sum(), len(np.unique(y[train]))) and np.allclose(P.sum(axis=1), 1)
    model.save(tmp_path / "m")
    np.testing.assert_array_equal(load_model(tmp_path / "m").predict_proba(take(inputs, val)), P)
    with pytest.raises(LexcoderError, match="fitted with context"):
        model.predict_proba(df["text"][val].tolist())
