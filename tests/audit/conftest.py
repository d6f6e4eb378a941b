"""Fixtures for the audit tests: a document-level ToS slice with seeded, known label flips."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

AUDIT_LABELS = ["limitation_of_liability", "unilateral_termination", "unilateral_change", "content_removal"]


@pytest.fixture(scope="session")
def tos_slice(tos_full) -> pd.DataFrame:
    """20 of the 50 Terms of Service (about 7k sentences), the four frequent labels used here."""
    docs = sorted(tos_full["doc_id"].unique())[:20]
    part = tos_full[tos_full["doc_id"].isin(docs)].reset_index(drop=True)
    return part[["id", "doc_id", "text", *AUDIT_LABELS]].copy()


def inject_flips(df: pd.DataFrame, labels: list[str], rate: float, seed: int
                 ) -> tuple[pd.DataFrame, np.ndarray]:
    """Flip ``rate`` of each label's positives to 0 and as many negatives to 1 (seeded).

    Returns the noisy table and the boolean ``(n, n_labels)`` mask of flipped pairs.
    """
    rng = np.random.default_rng(seed)
    noisy = df.copy()
    mask = np.zeros((len(df), len(labels)), dtype=bool)
    for j, lab in enumerate(labels):
        y = df[lab].to_numpy()
        k = max(1, int(round(rate * y.sum())))
        mask[rng.choice(np.flatnonzero(y == 1), k, replace=False), j] = True
        mask[rng.choice(np.flatnonzero(y == 0), k, replace=False), j] = True
        noisy[lab] = np.where(mask[:, j], 1 - y, y)
    return noisy, mask


@pytest.fixture(scope="session")
def audit_labels() -> list[str]:
    return list(AUDIT_LABELS)


@pytest.fixture(scope="session")
def noisy_slice(tos_slice):
    """The slice with 5 % of each label's positives (and as many negatives) flipped, seed 7.

    Returns ``(noisy table with a ``group`` column, flipped mask (n, n_labels))``.
    """
    noisy, flipped = inject_flips(tos_slice, AUDIT_LABELS, rate=0.05, seed=7)
    return noisy.rename(columns={"doc_id": "group"}), flipped


@pytest.fixture(scope="session")
def small_run(tos_slice, tmp_path_factory):
    """A finished, audited run on 8 documents (about 2.5k sentences) with two conflicting duplicates.

    Returns ``(run directory, data file, audit result)``.
    """
    from lexcoder import config_from_dict, run_pipeline
    from lexcoder.audit import audit_run

    root = tmp_path_factory.mktemp("audit_run")
    sizes = tos_slice["doc_id"].value_counts()
    docs = sorted(sizes.index[sizes <= 400])[:8]  # no document larger than the test split's share
    part = tos_slice[tos_slice["doc_id"].isin(docs)].reset_index(drop=True)
    twin = part.iloc[[0, 1]].copy()  # identical texts in another document, coded the other way
    twin["id"] = ["twin_a", "twin_b"]
    twin["doc_id"] = docs[-1]
    twin[AUDIT_LABELS[0]] = 1 - twin[AUDIT_LABELS[0]]
    data = root / "slice.csv"
    pd.concat([part, twin], ignore_index=True).to_csv(data, index=False)
    cfg = config_from_dict({"data": {"path": str(data), "text_column": "text", "id_column": "id",
                                     "label_columns": AUDIT_LABELS, "group_column": "doc_id"},
                           # documents share numbering lines ("1."): keep documents whole, not linked
                           "split": {"duplicates": "keep_groups"}})
    run_dir = root / "run"
    run_pipeline(cfg, run_dir)
    return run_dir, data, audit_run(run_dir, n_folds=4)
