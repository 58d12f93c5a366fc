"""The ``predictions`` block of a spec: a file (or a directory or glob of Parquet files) of decisions to audit as
it is, and how it is read (:mod:`fairprompt.scale`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from fairprompt.scale.scan import EXACT_ROWS
from fairprompt.spec_language import StrictBlock


class PredictionsSpec(StrictBlock):
    """A file of predictions to audit as it is."""

    path: str = Field(description="CSV, gzipped CSV or Parquet file with one row per decision; or a directory or glob "
                                  "of Parquet files (read batch by batch, any size)")
    label: str = Field(description="column of true outcomes")
    prediction: str | None = Field(None, description="column of predicted outcomes (or give score + score_threshold)")
    score: str | None = Field(None, description="column of scores or probabilities (enables AUC, calibration, scoring rate)")
    weight: str | None = Field(None, description="column of sample weights")
    positive_label: str | int | float | bool | None = Field(
        None, description="value of label/prediction that is the favourable outcome")
    score_threshold: float | None = Field(
        None, description="predict positive where score >= threshold (when no prediction column)")
    drop_missing: bool = Field(
        False, description="drop rows with a missing label, prediction, score or weight and count them in the report "
                           "(default: refuse such a file)")
    score_scale: Literal["probability", "logit"] = Field(
        "probability", description="probability: scores in [0, 1]; logit: log-odds, mapped through the sigmoid "
                                   "(score_threshold applies to the column as written)")
    exact_rows: int = Field(
        EXACT_ROWS, ge=0, description="a file of at most this many rows is audited from its rows (exact score "
                                      "metrics); a larger one from merged count tables and score histograms")
    engine: Literal["embedded", "spark"] = Field(
        "embedded", description="embedded: read here batch by batch; spark: aggregate on Apache Spark "
                                "(pip install 'fairprompt[scale]' and Java 17)")
    spark_master: str | None = Field(
        None, description="the Spark master URL with engine spark (default local[*]; spark://host:7077 for a cluster)")

    @model_validator(mode="after")
    def _prediction_source(self) -> PredictionsSpec:
        if self.prediction is not None and self.score_threshold is not None:
            raise ValueError(f"'prediction' ({self.prediction!r}) and 'score_threshold' ({self.score_threshold:g}) both "
                             "say how predictions are made; keep one: a prediction column, or score_threshold applied "
                             "to the score column")
        if self.score_threshold is not None and self.score is None:
            raise ValueError("score_threshold makes predictions from a score column; add 'score', the column it applies to")
        if self.prediction is None and (self.score is None or self.score_threshold is None):
            raise ValueError("give a prediction column, or a score column together with score_threshold")
        if self.spark_master is not None and self.engine != "spark":
            raise ValueError(f"spark_master ({self.spark_master!r}) is for engine spark; set engine: spark or drop it")
        return self
