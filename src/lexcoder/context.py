"""What a model reads for each row: the text alone, or the text with its context ([context] in the config).

Every stage that fits or applies a model (pipeline, audit cross-fitting, predict) gets its inputs from
:func:`model_inputs` and cuts them with :func:`take`, so that a context-aware run feeds every model alike.
(Context features are being built; without ``[context] order_column`` the inputs are the texts.)
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .config import Config


def model_inputs(df: pd.DataFrame, cfg: Config) -> pd.Series | pd.DataFrame:
    """The model inputs of the rows of the canonical table ``df``, in its row order (index 0..n-1)."""
    return df["text"].reset_index(drop=True)


def take(inputs: pd.Series | pd.DataFrame, rows: np.ndarray) -> Any:
    """The inputs of ``rows`` (a boolean mask or positions) in the form a model's ``fit``/``predict_proba``
    takes: a list of texts, or a DataFrame of texts with their context."""
    if isinstance(inputs, pd.DataFrame):
        return inputs.iloc[rows].reset_index(drop=True) if not np.asarray(rows).dtype == bool \
            else inputs[np.asarray(rows)].reset_index(drop=True)
    picked = inputs[np.asarray(rows)] if np.asarray(rows).dtype == bool else inputs.iloc[rows]
    return picked.tolist()
