"""Forward passes capped by ``max_tokens_per_batch``: long ToS passages never make one huge forward pass,
yet a training step updates the network as the whole batch would, and predictions do not change.

Tiny randomly initialised networks without dropout (tests/models/conftest.py), so that a capped and an
uncapped run may be compared to float rounding.
"""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from lexcoder.errors import ConfigError  # noqa: E402
from lexcoder.models.encoder import EncoderClassifier  # noqa: E402
from lexcoder.models.llm import LLMClassifier  # noqa: E402
from lexcoder.models.transformer import TransformerClassifier  # noqa: E402
from lexcoder.models.windows import pack  # noqa: E402

LABELS = ["limitation_of_liability", "unilateral_termination"]
MAX_LENGTH = 32
CAP = 4 * MAX_LENGTH  # at most 4 full windows per forward pass
# one step over all 16 texts, so the uncapped run really puts every window into one forward pass
SETTINGS = {"max_length": MAX_LENGTH, "stride": 8, "batch_size": 16, "eval_batch_size": 64, "epochs": 1,
            "max_steps": 1, "patience": None, "lr": 1e-3, "warmup_ratio": 0.0, "num_threads": 1, "seed": 0}
FAMILIES = {  # the two heads of the encoder family, both poolings, and the LoRA decoder (right padding)
    "encoder-mean-head-max-pooling": (EncoderClassifier, {"head": "mean", "pooling": "max"}),
    "encoder-cls-head-mean-pooling": (EncoderClassifier, {"head": "cls", "pooling": "mean"}),
    "llm-lora-max-pooling": (LLMClassifier, {"lora_r": 4, "lora_dropout": 0.0, "pooling": "max"}),
}


@pytest.fixture(scope="module")
def passages(tos_full) -> tuple[list[str], np.ndarray]:
    """16 texts: 8 passages of 6 to 48 consecutive sentences of one Terms of Service each (up to ~40
    windows), each starting at a coded clause, and 8 single sentences (2 + 2 coded, 4 not)."""
    docs = sorted(tos_full["doc_id"].unique())
    texts, codes = [], []
    for i, doc in enumerate(docs[:8]):
        rows = tos_full[tos_full["doc_id"] == doc].sort_values("sent_index").reset_index(drop=True)
        start = int(np.flatnonzero(rows[LABELS[i % 2]].to_numpy())[0])
        part = rows.iloc[start:start + 6 + 6 * i]
        texts.append(" ".join(part["text"]))
        codes.append(part[LABELS].max().to_numpy())
    sentences = tos_full[tos_full["doc_id"].isin(docs[8:])]
    for label in LABELS:
        picked = sentences[sentences[label] == 1].head(2)
        texts += picked["text"].tolist()
        codes += list(picked[LABELS].to_numpy())
    plain = sentences[sentences[LABELS].sum(axis=1) == 0].head(4)
    return texts + plain["text"].tolist(), np.vstack(codes + list(plain[LABELS].to_numpy()))


def _one_step(family: str, name: str, data, cap: int | None, monkeypatch) -> tuple[TransformerClassifier, list]:
    """Fit one step; returns the model and the accumulated gradient the optimizer step used (pre-clipping)."""
    klass, params = FAMILIES[family]
    grads: list[torch.Tensor] = []
    clip = torch.nn.utils.clip_grad_norm_

    def spy(parameters, max_norm):
        parameters = list(parameters)
        grads.extend(None if p.grad is None else p.grad.detach().clone() for p in parameters)  # None: unused
        return clip(parameters, max_norm)

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", spy)
    model = klass(name=name, **SETTINGS, **params, max_tokens_per_batch=cap).fit(*data, label_names=LABELS)
    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", clip)
    return model, grads


@pytest.mark.parametrize("family", FAMILIES)
def test_capped_step_equals_the_whole_batch_step(family, passages, forward_passes, tiny_bert, tiny_llama,
                                                 monkeypatch):
    name = tiny_llama if family.startswith("llm") else tiny_bert
    whole, whole_grads = _one_step(family, name, passages, 10**9, monkeypatch)
    windows = np.bincount(whole._encode(passages[0]).owner)
    assert len(forward_passes) == 1 and forward_passes[0].windows == windows.sum()  # uncapped: one huge pass
    assert windows.max() > CAP // MAX_LENGTH  # some passage alone needs several passes
    forward_passes.clear()

    capped, capped_grads = _one_step(family, name, passages, CAP, monkeypatch)
    assert max(p.tokens for p in forward_passes) <= CAP
    assert sum(p.windows for p in forward_passes) > windows.sum()  # chunks of long texts were recomputed
    assert len(capped_grads) == len(whole_grads) and sum(g is not None for g in whole_grads) > 0
    for g_capped, g_whole in zip(capped_grads, whole_grads):
        assert (g_capped is None) == (g_whole is None)
        if g_whole is not None:
            torch.testing.assert_close(g_capped, g_whole, rtol=1e-5, atol=1e-6)
    # AdamW's first step moves each weight by lr * g / (|g| + eps): the rounding of a near-zero gradient
    # entry may move it by a small fraction of lr, so the weights agree to 1% of lr (the gradients above
    # are the strict check)
    after_capped, after_whole = (dict(m.model_.named_parameters()) for m in (capped, whole))
    for key, value in after_whole.items():
        torch.testing.assert_close(after_capped[key], value, rtol=0, atol=SETTINGS["lr"] / 100)
    assert capped.history_[0]["train_loss"] == pytest.approx(whole.history_[0]["train_loss"], rel=1e-6)


def test_prediction_respects_the_cap_and_gives_the_same_probabilities(passages, forward_passes, tiny_bert):
    texts, Y = passages
    model = EncoderClassifier(name=tiny_bert, **SETTINGS, head="mean").fit(texts, Y, label_names=LABELS)
    forward_passes.clear()
    uncapped = model.predict_proba(texts)
    assert max(p.windows for p in forward_passes) == SETTINGS["eval_batch_size"]  # by default: eval_batch_size windows
    forward_passes.clear()
    model.set_params(max_tokens_per_batch=CAP)
    capped = model.predict_proba(texts)
    assert max(p.tokens for p in forward_passes) <= CAP
    np.testing.assert_allclose(capped, uncapped, rtol=0, atol=1e-6)


@pytest.mark.slow  # several seconds on 2 cores: CI runs it (make test); the quick suite (-m 'not slow') does not
def test_checkpointed_chunks_replay_their_dropout(passages, tiny_llama):
    """A long text's chunks are recomputed in the backward pass with the dropout masks of their forward pass:
    the gradient equals that of the same chunks kept in memory."""
    model = LLMClassifier(name=tiny_llama, **{**SETTINGS, "lora_r": 4, "lora_dropout": 0.5,
                                              "max_tokens_per_batch": CAP}).fit(*passages, label_names=LABELS)
    enc = model._encode([passages[0][7]])  # the longest passage (48 sentences)
    assert len(enc.ids) > CAP // MAX_LENGTH
    model.model_.train()

    def gradient(seed: int, checkpointed: bool) -> list[torch.Tensor]:
        torch.manual_seed(seed)
        if checkpointed:
            logits = model._window_logits(model.model_, enc.ids)
        else:
            chunks = pack(np.ones(len(enc.ids)), np.array([len(w) for w in enc.ids]), CAP)
            logits = torch.cat([model._forward(model.model_, **model._collate(enc.ids[c])) for c in chunks])
        model.model_.zero_grad()
        (logits ** 2).sum().backward()
        return [p.grad.clone() for p in model._trainable_parameters() if p.grad is not None]

    replayed, kept, other_masks = gradient(1, True), gradient(1, False), gradient(2, False)
    for a, b in zip(replayed, kept):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)
    assert any(not torch.allclose(a, b) for a, b in zip(kept, other_masks))  # the dropout really acted


def test_cap_smaller_than_one_window_is_a_config_error(passages, tiny_bert):
    with pytest.raises(ConfigError, match="max_tokens_per_batch = 16 is smaller than one window"):
        EncoderClassifier(name=tiny_bert, **SETTINGS, max_tokens_per_batch=16).fit(*passages)


@given(st.lists(st.tuples(st.integers(1, 6), st.integers(1, 40)), min_size=1, max_size=30),
       st.integers(1, 200), st.one_of(st.none(), st.integers(1, 10)))
def test_pack_cuts_greedy_consecutive_groups_within_the_cap(items, cap, max_count):
    counts, longest = (np.array(column) for column in zip(*items))
    groups = pack(counts, longest, cap, max_count=max_count)
    assert [i for g in groups for i in range(len(counts))[g]] == list(range(len(counts)))  # in order, all
    for g, nxt in zip(groups, [*groups[1:], None]):
        n, top = counts[g].sum(), longest[g].max()
        fits = n * top <= cap and (max_count is None or n <= max_count)
        assert fits or g.stop - g.start == 1  # only an item that alone is too big may break the limits
        if nxt is not None:  # greedy: the next item did not fit
            grown = n + counts[nxt.start]
            assert grown * max(top, longest[nxt.start]) > cap or (max_count is not None and grown > max_count)
