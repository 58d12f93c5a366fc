"""Reference mitigations that FairIJ and FairReprogram are compared against (benchmarks, notebooks).

- :func:`reweighing_weights`: the pre-processing weights of Kamiran and Calders (AIF360 ``Reweighing``),
  ``w(g, y) = P(g) P(y) / P(g, y)``, which make the group and the label independent in the weighted
  training data.  Used to re-tune a prompt (for example with
  :func:`fairprompt.mitigation.train_appended_prompt`).  Computed here for any number of groups;
  for two groups the values equal AIF360's (``tests/test_baselines.py`` checks it).
- :func:`threshold_optimizer`: fairlearn's ``ThresholdOptimizer`` (Hardt, Price and Srebro post-processing)
  fitted on one split's scores and applied to another's.  It needs the group at prediction time, which the
  prompt repairs do not.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import pandas as pd

from fairprompt.errors import FairpromptError

Constraint = Literal["demographic_parity", "equalized_odds", "true_positive_rate_parity", "false_positive_rate_parity"]


def _groups_and_labels(groups: Any, labels: Any, what: str) -> tuple[np.ndarray, np.ndarray]:
    g = np.asarray(pd.Series(np.asarray(groups, dtype=object).reshape(-1)).astype(str), dtype=object)
    y = np.asarray(labels).reshape(-1)
    if g.shape[0] != y.shape[0]:
        raise FairpromptError(f"{what}: {g.shape[0]} group labels for {y.shape[0]} labels; pass one group per row")
    if y.shape[0] == 0:
        raise FairpromptError(f"{what}: no rows")
    if np.unique(g).size < 2:
        raise FairpromptError(f"{what}: a single group ({g[0]!r}); it needs rows from at least two groups")
    return g, y


def reweighing_weights(*, groups: Any, labels: Any) -> np.ndarray:
    """One weight per row, ``P(g) P(y) / P(g, y)`` over the rows' group ``g`` and label ``y`` (Kamiran and Calders;
    AIF360 ``Reweighing``).  Weighted by them, every group has the same label distribution as the whole data."""
    g, y = _groups_and_labels(groups, labels, "reweighing_weights")
    frame = pd.DataFrame({"g": g, "y": y})
    n = len(frame)
    p_g = frame["g"].map(frame["g"].value_counts() / n)
    p_y = frame["y"].map(frame["y"].value_counts() / n)
    p_gy = frame.groupby(["g", "y"])["g"].transform("size") / n
    return (p_g * p_y / p_gy).to_numpy(dtype=np.float64)


def _prefit_scores() -> Any:
    """A fitted sklearn classifier whose single input column is already P(class 1)."""
    from sklearn.base import BaseEstimator, ClassifierMixin

    class Scores(ClassifierMixin, BaseEstimator):
        def fit(self, X: Any, y: Any = None) -> Any:
            self.classes_ = np.array([0, 1])
            return self

        def predict(self, X: Any) -> np.ndarray:
            return (np.asarray(X, dtype=float)[:, 0] >= 0.5).astype(int)

        def predict_proba(self, X: Any) -> np.ndarray:
            s = np.asarray(X, dtype=float)[:, 0]
            return np.stack([1 - s, s], axis=1)

    return Scores().fit(None)


def threshold_optimizer(*, fit_scores: Any, fit_labels: Any, fit_groups: Any, scores: Any, groups: Any,
                        constraints: Constraint = "demographic_parity", seed: int = 0,
                        tol: float | None = None) -> np.ndarray:
    """Fit fairlearn's ``ThresholdOptimizer`` (objective: accuracy) on ``fit_*`` (a validation split's P(class 1),
    labels and groups) and return its 0/1 decisions for ``scores`` and ``groups`` (randomized, seeded).  ``tol``
    relaxes the constraint: the constrained rates may differ across groups by at most ``tol`` (None: equal)."""
    from fairlearn.postprocessing import ThresholdOptimizer

    fit_groups, fit_labels = _groups_and_labels(fit_groups, fit_labels, "threshold_optimizer (fit split)")
    fit_scores = np.asarray(fit_scores, dtype=float).reshape(-1)
    scores = np.asarray(scores, dtype=float).reshape(-1)
    groups = np.asarray(pd.Series(np.asarray(groups, dtype=object).reshape(-1)).astype(str), dtype=object)
    if fit_scores.shape[0] != fit_labels.shape[0] or scores.shape[0] != groups.shape[0]:
        raise FairpromptError("threshold_optimizer: pass one score per row, with one group (and label) per row")
    unseen = sorted(set(groups) - set(fit_groups))
    if unseen:
        raise FairpromptError(f"threshold_optimizer: group(s) {unseen} have no rows in the fit split; "
                              "fit on a split with every group")
    if tol is not None and not (isinstance(tol, int | float) and 0 <= tol <= 1):
        raise FairpromptError(f"threshold_optimizer: tol is {tol!r}; use a share in [0, 1] or None")
    optimizer = ThresholdOptimizer(estimator=_prefit_scores(), constraints=constraints, objective="accuracy_score",
                                   prefit=True, predict_method="predict_proba", tol=tol)
    optimizer.fit(fit_scores.reshape(-1, 1), fit_labels, sensitive_features=fit_groups)
    return np.asarray(optimizer.predict(scores.reshape(-1, 1), sensitive_features=groups, random_state=seed), dtype=int)


__all__ = ["reweighing_weights", "threshold_optimizer"]
