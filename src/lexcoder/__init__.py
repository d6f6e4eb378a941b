"""lexcoder: replace manual coders of legal texts with language models, with research-grade statistics.

The pipeline's stages are plain functions (the CLI is a thin layer over them)::

    import lexcoder
    cfg = lexcoder.load_config("my.toml")
    result = lexcoder.run_pipeline(cfg, "runs/exp1")
    repeats = lexcoder.run_repeats(cfg, "runs/exp1x5", 5)   # 5 splits/seeds: figures as mean ± sd
    # or stage by stage:
    df, report = lexcoder.load_dataset(cfg.data)
    df, conflicts, _ = lexcoder.clean(df, cfg.data.label_columns)
    splits = lexcoder.make_splits(df, cfg.data.label_columns, cfg.split)
    model = lexcoder.build_model("tfidf").fit(texts, Y)
    lexcoder.predict_file("runs/exp1", "new.csv", "coded.csv")
    lexcoder.build_report("runs/exp1")                    # report.html + report.md
    lexcoder.estimate_run("runs/exp1", "coded.csv", "gold.csv")   # prevalences with valid intervals (PPI++)
"""
from __future__ import annotations

from .calibrate import Calibrator
from .clean import clean, clean_text
from .config import Config, config_from_dict, load_config
from .data import load_dataset, validate_table
from .errors import ConfigError, DataError, LexcoderError
from .estimate import estimate_prevalence, estimate_regression, estimate_run
from .evaluate import evaluate_predictions
from .models import TextClassifier, build_model
from .pipeline import run_pipeline
from .predict import predict_file
from .report import build_report
from .repeats import run_repeats
from .rundir import RunDir, load_model
from .split import make_splits
from .thresholds import choose_thresholds

__version__ = "0.1.0"

__all__ = [
    "Calibrator", "Config", "ConfigError", "DataError", "LexcoderError", "RunDir", "TextClassifier", "build_model",
    "build_report",
    "choose_thresholds", "clean", "clean_text", "config_from_dict", "estimate_prevalence", "estimate_regression",
    "estimate_run", "evaluate_predictions", "load_config",
    "load_dataset", "load_model", "make_splits", "predict_file", "run_pipeline", "run_repeats",
    "validate_table",
]
