"""Coding a Spark DataFrame with a run: ``mapInPandas`` over :class:`lexcoder.predict.Coder`, the one batch
function, so Spark writes the codes ``lexcoder predict`` writes.

PySpark is the user's (a cluster brings its own): it is imported only here, and only when called.

    from lexcoder.distributed.spark import code_spark_dataframe
    coded = code_spark_dataframe(spark.read.parquet("/shared/corpus.parquet"), "/shared/runs/exp1")
    coded.write.parquet("/shared/coded")
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from ..predict import Coder


def spark_coder(run_dir: str | Path, *, text_column: str | None = None, id_column: str | None = None
                ) -> Callable[[Iterator[pd.DataFrame]], Iterator[pd.DataFrame]]:
    """The function ``DataFrame.mapInPandas`` runs on the executors: it loads the run's models once per
    partition task and codes each pandas batch with :meth:`Coder.code`. (Spark pickles it: the run folder
    must be on a file system every executor sees.)"""
    run_dir = str(run_dir)

    def code_partitions(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        coder = Coder(run_dir, text_column=text_column, id_column=id_column)
        for batch in batches:
            yield coder.code(batch, source="a Spark partition")
    return code_partitions


def spark_schema(coder: Coder, input_schema: Any) -> Any:
    """The ``pyspark.sql.types.StructType`` of :meth:`Coder.code`'s output for an input of ``input_schema``:
    the input's fields but those the codes replace, then the coded columns (double probabilities, tinyint
    0/1 codes, a variable's class as string: :meth:`Coder.coded_schema`)."""
    import pyarrow as pa
    from pyspark.sql.types import ByteType, DoubleType, StringType, StructField, StructType
    spark_type = {pa.float64(): DoubleType(), pa.int8(): ByteType(), pa.string(): StringType()}
    kept = [f for f in input_schema.fields if f.name not in coder.added]
    return StructType(kept + [StructField(f.name, spark_type[f.type], True) for f in coder.coded_schema()])


def code_spark_dataframe(df: Any, run_dir: str | Path, *, text_column: str | None = None,
                         id_column: str | None = None) -> Any:
    """``df`` (a ``pyspark.sql.DataFrame``) with the run's coded columns added, lazily (nothing runs until the
    result is written or collected).

    Raises
    ------
    DataError
        When ``df`` lacks the text column or a column the run's context reads (checked here, on the driver,
        on the first rows, before a job is started for the whole corpus).
    """
    coder = Coder(run_dir, text_column=text_column, id_column=id_column)
    coder.check(df.limit(100).toPandas(), "the Spark DataFrame")
    return df.mapInPandas(spark_coder(run_dir, text_column=text_column, id_column=id_column),
                          spark_schema(coder, df.schema))
