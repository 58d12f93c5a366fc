"""A plain scikit-learn baseline on tabular data: the demo's model until the frozen-model pipeline lands.

Logistic regression on one-hot categorical and standardized numeric columns,
trained on a seeded, label-stratified split; the held-out split is predicted
and returned for auditing.  The sensitive columns are left out of the
features unless asked for (the audit still groups by them).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from fairprompt.errors import FairpromptError, did_you_mean


@dataclass(frozen=True)
class BaselinePredictions:
    """Held-out rows with the baseline's predictions."""

    frame: pd.DataFrame  # the held-out rows, original columns
    y_true: np.ndarray  # 0/1, 1 = favourable
    y_pred: np.ndarray  # 0/1
    y_score: np.ndarray  # P(favourable)
    features: tuple[str, ...]
    description: dict[str, object] = field(default_factory=dict)
    rows: np.ndarray | None = None  # the held-out rows' positions in the data set


def design(frame: pd.DataFrame, features: Sequence[str]) -> ColumnTransformer:
    """The feature transform of the baseline: numeric columns standardised, the others one-hot encoded."""
    numeric = [c for c in features if pd.api.types.is_numeric_dtype(frame[c])]
    categorical = [c for c in features if c not in numeric]
    return ColumnTransformer([
        ("numeric", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric),
        ("categorical", make_pipeline(SimpleImputer(strategy="constant", fill_value="missing"),
                                      OneHotEncoder(handle_unknown="ignore", min_frequency=10)), categorical),
    ])


def train_and_predict(
    *,
    frame: pd.DataFrame,
    y: np.ndarray,
    label: str,
    sensitive: Sequence[str],
    features: Sequence[str] | None = None,
    include_sensitive: bool = False,
    test_size: float = 0.3,
    seed: int = 0,
    threshold: float = 0.5,
) -> BaselinePredictions:
    """Fit logistic regression on a training split and predict the held-out split."""
    if features is None:
        excluded = {label} | (set() if include_sensitive else set(sensitive))
        features = [c for c in frame.columns if c not in excluded]
    else:
        for column in features:
            if column not in frame.columns:
                raise FairpromptError(f"model feature {column!r} is not a column of the data"
                                      f"{did_you_mean(column, frame.columns)}")
            if column == label:
                raise FairpromptError(f"model feature {column!r} is the label; remove it from model.features")
    if not features:
        raise FairpromptError("the model has no feature columns; list some in model.features")
    index = np.arange(len(frame))
    train, test = train_test_split(index, test_size=test_size, random_state=seed, stratify=y)
    model = Pipeline([("design", design(frame, features)), ("classifier", LogisticRegression(max_iter=2000))])
    model.fit(frame.iloc[train][list(features)], y[train])
    score = model.predict_proba(frame.iloc[test][list(features)])[:, 1]
    return BaselinePredictions(
        frame=frame.iloc[test].reset_index(drop=True),
        y_true=y[test],
        y_pred=(score >= threshold).astype(np.int8),
        y_score=score,
        features=tuple(features),
        rows=test,
        description={
            "kind": "logistic_regression",
            "library": "scikit-learn",
            "features": list(features),
            "sensitive_in_features": bool(include_sensitive),
            "train_rows": int(train.size),
            "test_rows": int(test.size),
            "threshold": threshold,
            "seed": seed,
            "train_accuracy": float(model.score(frame.iloc[train][list(features)], y[train])),
        },
    )


YARDSTICK_BOOTSTRAP = 1000
"""Resamples of the paired interval of (yardstick accuracy - model accuracy)."""


def reference_scores(
    *, frame: pd.DataFrame, y: np.ndarray, train: np.ndarray, test: np.ndarray, features: Sequence[str],
    threshold: float = 0.5, model_decisions: np.ndarray | None = None, seed: int = 0,
) -> dict[str, object]:
    """Logistic regression trained on exactly the given training rows and features, scored on the test rows.

    The yardstick for a prompted model: same rows, same columns, a strong simple model. With the model's test
    decisions (``model_decisions``), also the yardstick's accuracy minus the model's with its paired-bootstrap
    interval (:data:`YARDSTICK_BOOTSTRAP` resamples, ``seed``).
    """
    from sklearn.metrics import roc_auc_score

    from fairprompt.metrics.paired import paired_accuracy_difference

    model = Pipeline([("design", design(frame, features)), ("classifier", LogisticRegression(max_iter=2000))])
    model.fit(frame.iloc[train][list(features)], y[train])
    score = model.predict_proba(frame.iloc[test][list(features)])[:, 1]
    decisions = (score >= threshold).astype(int)
    out: dict[str, object] = {
        "kind": "logistic_regression (scikit-learn), same training rows and columns",
        "train_rows": int(train.size), "test_rows": int(test.size),
        "test_accuracy": float((decisions == y[test]).mean()),
        "test_auc": float(roc_auc_score(y[test], score)) if np.unique(y[test]).size == 2 else None,
    }
    if model_decisions is not None:
        gap, low, high = paired_accuracy_difference(y_true=y[test], first=decisions, second=model_decisions,
                                                    n_boot=YARDSTICK_BOOTSTRAP, seed=seed)
        out |= {"accuracy_gap": gap, "accuracy_gap_ci_low": low, "accuracy_gap_ci_high": high,
                "accuracy_gap_ci": f"95% paired bootstrap over the test rows, {YARDSTICK_BOOTSTRAP} resamples, seed {seed}"}
    return out
