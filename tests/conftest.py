"""Shared fixtures: real legal data (the bundled ToS sentences), small document-level slices of it."""
from __future__ import annotations

import os

import pandas as pd
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("LEXCODER_PROGRESS", "0")

from lexcoder.demo import TOS_LABELS, demo_data_path  # noqa: E402


@pytest.fixture(scope="session")
def tos_full() -> pd.DataFrame:
    """All 17,383 ToS sentences (CC BY 4.0, bundled with the package)."""
    return pd.read_csv(demo_data_path())


@pytest.fixture(scope="session")
def tos_labels() -> list[str]:
    return list(TOS_LABELS)


@pytest.fixture(scope="session")
def tos_docs(tos_full) -> pd.DataFrame:
    """A document-level slice: 30 of the 50 Terms of Service (about 10k sentences)."""
    docs = sorted(tos_full["doc_id"].unique())[:30]
    return tos_full[tos_full["doc_id"].isin(docs)].reset_index(drop=True)


def write_config(tmp_path, data_path, labels, **data_extra) -> "os.PathLike":
    """Write a minimal lexcoder config for ``data_path`` and return its path."""
    import tomli_w
    cfg = {"data": {"path": str(data_path), "text_column": "text", "id_column": "id",
                    "label_columns": list(labels), **data_extra}}
    if "group_column" in data_extra:  # ToS documents share numbering lines ("1.", "2."): linking documents
        cfg["split"] = {"duplicates": "keep_groups"}  # through them would chain them into one unit
    path = tmp_path / "config.toml"
    path.write_text(tomli_w.dumps(cfg), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def make_config():
    """The :func:`write_config` helper as a fixture (test modules are not a package)."""
    return write_config


def write_corpus_run(tos_full, folder, n_docs: int, labels: list[str], **config) -> "os.PathLike":
    """The first ``n_docs`` Terms of Service as ``folder/data.csv`` and ``data.parquet``, and a TF-IDF run trained
    on them in ``folder/run`` (no bootstrap, no report): a corpus and a run to code it with."""
    import lexcoder
    docs = sorted(tos_full["doc_id"].unique())[:n_docs]
    data = tos_full[tos_full["doc_id"].isin(docs)].reset_index(drop=True)
    data.to_csv(folder / "data.csv", index=False)
    data.to_parquet(folder / "data.parquet", index=False)
    cfg = write_config(folder, folder / "data.csv", labels, **config)
    lexcoder.run_pipeline(lexcoder.load_config(cfg, ["evaluate.bootstrap=0", "report.enabled=false"]),
                          folder / "run")
    return folder


@pytest.fixture(scope="session")
def corpus_run():
    """The :func:`write_corpus_run` helper as a fixture."""
    return write_corpus_run


def assert_same_rows_by_id(coded: pd.DataFrame, single: pd.DataFrame) -> None:
    """Ray's output holds exactly the single-process output's rows (each id once, the same codes); its order
    is Ray's (README: match rows by id), so the rows are compared in the single-process order."""
    assert coded["id"].is_unique and sorted(coded["id"]) == sorted(single["id"])
    aligned = coded.set_index("id").loc[single["id"]].reset_index()
    pd.testing.assert_frame_equal(aligned, single)


@pytest.fixture(scope="session")
def same_rows_by_id():
    """The :func:`assert_same_rows_by_id` helper as a fixture."""
    return assert_same_rows_by_id


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray of 2 CPUs for one test module (skipped without Ray), shut down after it."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def pytest_collection_modifyitems(config, items):
    """Skip tests marked ``gpu`` where torch sees no CUDA device (CI, laptops): they run on GPU machines."""
    try:
        import torch
        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    if has_cuda:
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (run `pytest -m gpu` on a GPU machine)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def shared_data():
    """A function: the path of a data set in the project's shared/data folder (beside the repository, as in
    CI; or /work/shared), skipping the test where it is not available."""
    from pathlib import Path
    roots = [Path(__file__).resolve().parents[2] / "shared" / "data", Path("/work/shared/data")]

    def find(relative: str) -> Path:
        for root in roots:
            if (root / relative).is_file():
                return root / relative
        pytest.skip(f"shared data {relative} is not available")
    return find
