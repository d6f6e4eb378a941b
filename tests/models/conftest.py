"""Tiny randomly initialised transformers (local Hugging Face directories) for fast CPU tests of the
fine-tuned families: word-level tokenizers trained on the ToS sentences, networks of a few thousand weights."""
from __future__ import annotations

from typing import NamedTuple

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")


def _word_tokenizer(texts: list[str], special: list[str]):
    """A word-level ``tokenizers.Tokenizer`` trained on ``texts``; ``special[0]`` is the unknown token."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    tok = Tokenizer(models.WordLevel(unk_token=special[0]))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(texts, trainers.WordLevelTrainer(vocab_size=3000, min_frequency=2,
                                                             special_tokens=special))
    return tok


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory, tos_full) -> str:
    """A local HF directory: random 2-layer Llama + a word-level tokenizer trained on ToS (no pad token)."""
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast
    tok = _word_tokenizer(tos_full["text"].tolist(), ["<unk>", "<s>", "</s>"])
    config = LlamaConfig(vocab_size=tok.get_vocab_size(), hidden_size=64, intermediate_size=128,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=256, bos_token_id=1, eos_token_id=2)
    torch.manual_seed(0)
    directory = tmp_path_factory.mktemp("tiny_llama")
    LlamaForCausalLM(config).save_pretrained(directory)
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>",
                            eos_token="</s>").save_pretrained(directory)
    return str(directory)


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory, tos_full) -> str:
    """A local HF directory: random 2-layer BERT without dropout (so two runs can agree to the last digits)
    + a word-level tokenizer trained on ToS that wraps every window in [CLS] ... [SEP]."""
    from tokenizers import processors
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast
    tok = _word_tokenizer(tos_full["text"].tolist(), ["[UNK]", "[PAD]", "[CLS]", "[SEP]"])
    tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]",
                                                       special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    config = BertConfig(vocab_size=tok.get_vocab_size(), hidden_size=32, intermediate_size=64,
                        num_hidden_layers=2, num_attention_heads=2, max_position_embeddings=128,
                        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, pad_token_id=1)
    torch.manual_seed(0)
    directory = tmp_path_factory.mktemp("tiny_bert")
    BertModel(config).save_pretrained(directory)
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                            sep_token="[SEP]").save_pretrained(directory)
    return str(directory)


class ForwardPass(NamedTuple):
    windows: int
    tokens: int  # padding included
    threads: int  # torch's CPU threads while it ran


@pytest.fixture
def forward_passes(monkeypatch) -> list[ForwardPass]:
    """Every forward pass through the networks the encoder and LLM classifiers build (in fit)."""
    from lexcoder.models.encoder import EncoderClassifier
    from lexcoder.models.llm import LLMClassifier
    passes: list[ForwardPass] = []

    def record(module, args, kwargs):
        ids = kwargs["input_ids"] if "input_ids" in kwargs else args[0]
        passes.append(ForwardPass(ids.shape[0], ids.numel(), torch.get_num_threads()))

    for klass in (EncoderClassifier, LLMClassifier):
        def build(self, num_labels, _build=klass._build_model):
            network = _build(self, num_labels)
            network.register_forward_pre_hook(record, with_kwargs=True)
            return network
        monkeypatch.setattr(klass, "_build_model", build)
    return passes


@pytest.fixture(scope="session")
def sampled_split(tos_full):
    """A function drawing a small table with a ``split`` column by whole documents (documents 0-29 train,
    30-39 val, 40-49 test): per split, ``n_pos`` sentences with any of ``labels`` and ``n_neg`` without,
    from sentences shorter than ``max_chars``."""
    import pandas as pd

    def draw(labels: list[str], counts: dict[str, tuple[int, int]], *, seed: int, max_chars: int) -> pd.DataFrame:
        short = tos_full[tos_full["text"].str.len() < max_chars]
        docs = sorted(short["doc_id"].unique())
        slices = {"train": docs[:30], "val": docs[30:40], "test": docs[40:]}
        parts = []
        for split, (n_pos, n_neg) in counts.items():
            rows = short[short["doc_id"].isin(slices[split])]
            has = rows[labels].sum(axis=1) > 0
            parts.append(pd.concat([rows[has].sample(n_pos, random_state=seed),
                                    rows[~has].sample(n_neg, random_state=seed)]).assign(split=split))
        return pd.concat(parts)[["id", "text", "split", *labels]]
    return draw
