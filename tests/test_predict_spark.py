"""Spark (issue 15): the README's ``code_spark_dataframe`` on a local Spark codes a corpus exactly as
``lexcoder predict`` does — 0/1 labels and a categorical variable — and refuses a DataFrame without the text
column before starting a job. Skipped without PySpark or Java."""
from __future__ import annotations

import importlib.util
import shutil

import numpy as np
import pandas as pd
import pytest
import tomli_w

from lexcoder import load_config, predict_file, run_pipeline
from lexcoder.errors import DataError

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(importlib.util.find_spec("pyspark") is None or shutil.which("java") is None,
                                 reason="PySpark or Java is not installed (pip install 'lexcoder[spark]')")]
LABELS = ["subsumption", "precedent_ecthr"]
SPEAKERS = {"agent_applicant": "applicant", "agent_court": "court", "agent_state": "state"}


@pytest.fixture(scope="module")
def corpus(shared_data, tmp_path_factory):
    """ECHR paragraphs of 20 judgments: two argument types (0/1) and who argues (a categorical variable);
    a TF-IDF run trained on them."""
    df = pd.read_csv(shared_data("echr_arguments/paragraphs.csv.gz"))
    df = df[df["doc_id"].isin(sorted(df["doc_id"].unique())[:20]) & (df[list(SPEAKERS)].sum(axis=1) <= 1)]
    df = df.assign(speaker=np.select([df[c] == 1 for c in SPEAKERS], list(SPEAKERS.values()), default="no_one"))
    folder = tmp_path_factory.mktemp("spark")
    df[["id", "doc_id", "text", *LABELS, "speaker"]].to_csv(folder / "data.csv", index=False)
    raw = {"data": {"path": str(folder / "data.csv"), "id_column": "id", "label_columns": LABELS,
                    "class_columns": ["speaker"], "group_column": "doc_id"},
           "split": {"duplicates": "keep_groups"}, "evaluate": {"bootstrap": 0}, "report": {"enabled": False}}
    (folder / "run.toml").write_text(tomli_w.dumps(raw), encoding="utf-8")
    run_pipeline(load_config(folder / "run.toml"), folder / "run")
    df[["id", "text"]].to_parquet(folder / "corpus.parquet", index=False)
    return folder


@pytest.fixture(scope="module")
def spark():
    import os
    import sys

    from pyspark.sql import SparkSession
    # the executors' Python must have lexcoder installed: on a cluster, the users' environment; here, this one
    os.environ["PYSPARK_PYTHON"] = os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
    session = (SparkSession.builder.master("local[1]").appName("lexcoder-test")
               .config("spark.ui.enabled", "false").config("spark.sql.shuffle.partitions", "2").getOrCreate())
    yield session
    session.stop()


def test_spark_codes_like_lexcoder_predict(corpus, spark, tmp_path):
    from lexcoder.distributed.spark import code_spark_dataframe
    single = pd.read_parquet(predict_file(corpus / "run", corpus / "corpus.parquet", tmp_path / "single.parquet"))
    frame = spark.read.parquet(str(corpus / "corpus.parquet")).repartition(3)  # several partitions, any order
    code_spark_dataframe(frame, corpus / "run").write.parquet(str(tmp_path / "coded"))
    coded = pd.read_parquet(tmp_path / "coded").set_index("id").loc[single["id"]].reset_index()
    assert list(coded.columns) == list(single.columns)
    assert {"speaker_pred", "speaker_prob_court", "subsumption_prob", "precedent_ecthr_pred"} <= set(coded.columns)
    pd.testing.assert_frame_equal(coded, single, check_dtype=False)
    assert coded["speaker_pred"].map(type).eq(str).all() and set(coded["subsumption_pred"]) <= {0, 1}


def test_a_frame_without_the_text_column_is_refused_on_the_driver(corpus, spark):
    from lexcoder.distributed.spark import code_spark_dataframe
    frame = spark.read.parquet(str(corpus / "corpus.parquet")).withColumnRenamed("text", "body")
    with pytest.raises(DataError, match="text"):
        code_spark_dataframe(frame, corpus / "run")
    assert code_spark_dataframe(frame, corpus / "run", text_column="body").count() == frame.count()
