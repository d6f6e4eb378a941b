"""Shared for the active-learning tests: a quick TF-IDF model's view of a pool of real ToS sentences."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

import lexcoder

LABELS = ["limitation_of_liability", "unilateral_termination", "unilateral_change", "contract_by_using",
          "jurisdiction", "arbitration"]


@dataclass
class Pool:
    """Texts the model never saw, their true codes, the model's probabilities, and the coded texts."""

    labels: list[str]
    texts: list[str]
    truth: pd.DataFrame
    probs: np.ndarray
    coded: pd.DataFrame


@pytest.fixture(scope="session")
def pool(tos_full) -> Pool:
    """A TF-IDF model trained on 6 Terms of Service; the pool: the sentences of 12 others."""
    docs = sorted(tos_full["doc_id"].unique())
    coded = tos_full[tos_full["doc_id"].isin(docs[:6])].reset_index(drop=True)
    rest = tos_full[tos_full["doc_id"].isin(docs[20:32])].reset_index(drop=True)
    model = lexcoder.build_model("tfidf").fit(coded["text"].tolist(), coded[LABELS].to_numpy())
    return Pool(LABELS, rest["text"].tolist(), rest[LABELS], model.predict_proba(rest["text"].tolist()), coded)
