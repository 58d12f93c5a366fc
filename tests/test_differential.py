"""Differential tests: fairprompt's metric engine against fairlearn 0.15, scikit-learn and AIF360 0.6.1.

Every metric that a peer also computes must equal the peer's value to 1e-9 on
randomized inputs: two groups, several groups, groups with no positives / no
negatives / no predicted positives ("empty"), with and without sample weights,
and the intersection of two sensitive columns.  Each test names the peer
function it checks (test name or parametrize id).

Conventions are mapped as follows (and checked, so a change on either side shows):

- ``between_groups`` = fairlearn's ``MetricFrame.difference()/ratio()`` (max-min, min/max);
  ``to_reference`` = AIF360's ``unprivileged - privileged`` with privileged = our
  reference group and unprivileged = each other group in turn.
- Undefined rates (0/0): ours are NaN with a reason.  Peers differ:
  * fairlearn's ``true/false_positive/negative_rate`` return 0.0 (scikit-learn's
    ``confusion_matrix(normalize="true")`` turns 0/0 into 0), so fairlearn's own
    disparity functions count such a group as a rate of 0.  Mapped: fairlearn value
    == ours with NaN replaced by 0.  The NaN-aware peer ``recall_score(zero_division=nan)``
    (and ``pos_label=0`` for TNR, FPR = 1 - TNR) through ``MetricFrame.difference``
    skips undefined groups exactly as we do.
  * ``precision_score`` returns 0.0 by default, NaN with ``zero_division=nan`` (exact).
  * ``balanced_accuracy_score`` averages the recalls of the classes present, so a
    one-class group gets its one recall; ours is NaN (both classes needed).
  * ``MetricFrame.difference`` with a single defined group is 0.0; ours is NaN
    (a gap needs two defined groups).
  * AIF360's TPR/FPR/TNR/FNR are NaN (0/0), same as ours; its PPV/NPV/FDR/FOR/accuracy
    are 0.0 when undefined.  ``disparate_impact`` with a reference selection rate of 0
    is inf (or NaN for 0/0) in AIF360 and NaN in ours.  AIF360's
    ``equalized_odds_difference`` is Python ``max(|dFPR|, |dTPR|)``, which returns
    ``|dFPR|`` when ``dTPR`` is NaN; ours is NaN when either gap is undefined.
- AIF360's entropy indices are unweighted: compared on unweighted data, and on
  integer weights against AIF360 on repeated rows.  AIF360's alpha = 0 index divides
  by the mean benefit once more than Speicher et al.'s definition (ours follows the paper).
"""

from __future__ import annotations

import functools
import logging
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

fairlearn_metrics = pytest.importorskip("fairlearn.metrics")
skm = pytest.importorskip("sklearn.metrics")

from fairprompt.metrics import Audit, SliceAudit, audit  # noqa: E402
from fairprompt.metrics.inequality import between_group_entropy_index, generalized_entropy_index  # noqa: E402

MetricFrame = fairlearn_metrics.MetricFrame
TOL = 1e-9


def _import_aif360():
    """Import AIF360's classic API without its import-time warnings about optional packages."""
    root = logging.getLogger()
    quiet = logging.NullHandler()
    root.addHandler(quiet)  # keeps logging.warning() from installing a stderr handler
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from aif360.datasets import BinaryLabelDataset
            from aif360.metrics import BinaryLabelDatasetMetric, ClassificationMetric
    except ImportError:
        pytest.skip("aif360 is not installed", allow_module_level=True)
    finally:
        logging.disable(logging.NOTSET)
        root.removeHandler(quiet)
    return BinaryLabelDataset, BinaryLabelDatasetMetric, ClassificationMetric


BinaryLabelDataset, BinaryLabelDatasetMetric, ClassificationMetric = _import_aif360()

pytestmark = pytest.mark.filterwarnings("ignore")  # sklearn / numpy warnings on undefined peer values

# ---------------------------------------------------------------------------------------------
# Randomized cases
# ---------------------------------------------------------------------------------------------

SCENARIOS = {"2groups": 2, "4groups": 4, "empty": 5}
"""Scenario -> number of groups in column ``g``.  ``empty``: g0 has no positives,
g1 no predicted positives, g2 no negatives (so also no false positives)."""
WEIGHTINGS = ("unweighted", "weighted")
N_SEEDS = 16
"""Seeds per scenario and weighting (96 random data sets).  The peers cost 1-3 ms per metric, group and
call (scikit-learn's input checks), so this keeps the file near 55 s on 2 cores."""
CASES = [
    pytest.param(scenario, weighting, seed, id=f"{scenario}-{weighting}-{seed}")
    for scenario in SCENARIOS for weighting in WEIGHTINGS for seed in range(N_SEEDS)
]
UNWEIGHTED_CASES = [c for c in CASES if c.values[1] == "unweighted"]
INTERSECTION = "g × h"
N_INTERSECTION_SEEDS = 4
"""Seeds per scenario and weighting for the intersection slice (10 groups at most: the peers are slow there)."""


def slice_cases(*extra: str) -> list:
    """(scenario, weighting, seed, slice): column g for every seed, the intersection (and ``extra``) for fewer."""
    out = [pytest.param(*c.values, "g", id=f"{c.id}-g") for c in CASES]
    for name in (INTERSECTION, *extra):
        out += [pytest.param(*c.values, name, id=f"{c.id}-{name.replace(' × ', 'x')}")
                for c in CASES if c.values[2] < N_INTERSECTION_SEEDS]
    return out


@dataclass(frozen=True)
class Case:
    y: np.ndarray
    p: np.ndarray
    s: np.ndarray
    g: np.ndarray
    h: np.ndarray
    w: np.ndarray | None
    result: Audit

    @property
    def frame(self) -> pd.DataFrame:
        return pd.DataFrame({"g": self.g, "h": self.h})

    def sensitive(self, name: str):
        return self.frame[["g", "h"]] if name == INTERSECTION else self.frame[name]


def make_data(scenario: str, weighting: str, seed: int, *, n: int | None = None, integer_weights: bool = False):
    n_groups = SCENARIOS[scenario]
    rng = np.random.default_rng([seed, n_groups, weighting == "weighted"])
    n = n or int(rng.integers(150, 420))
    gi = rng.choice(n_groups, size=n, p=rng.dirichlet(np.full(n_groups, 4.0)))
    gi[: 8 * n_groups] = np.repeat(np.arange(n_groups), 8)
    hi = rng.integers(0, 2, n)
    hi[:2] = (0, 1)
    base = rng.uniform(0.2, 0.7, n_groups)
    shift = rng.uniform(-0.15, 0.15, n_groups)
    y = (rng.random(n) < base[gi]).astype(int)
    s = np.clip(np.round(0.45 * y + rng.normal(0.3 + shift[gi], 0.2), 2), 0.0, 1.0)  # rounded: ties
    p = (s >= rng.uniform(0.35, 0.6)).astype(int)
    if scenario == "empty":
        y[gi == 0] = 0
        p[gi == 1] = 0
        y[gi == 2] = 1
    if weighting == "weighted":
        w = rng.integers(1, 6, n).astype(float) if integer_weights else rng.lognormal(0.0, 0.7, n)
    else:
        w = None
    g = np.array([f"g{i}" for i in range(n_groups)])[gi]
    h = np.array(["x", "y"])[hi]
    return y, p, s, g, h, w


@functools.cache
def case(scenario: str, weighting: str, seed: int) -> Case:
    y, p, s, g, h, w = make_data(scenario, weighting, seed)
    result = audit(y_true=y, y_pred=p, sensitive=pd.DataFrame({"g": g, "h": h}), y_score=s, sample_weight=w, n_boot=0)
    return Case(y=y, p=p, s=s, g=g, h=h, w=w, result=result)


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


def assert_same(ours, theirs, what: str) -> None:
    """Equal to 1e-9, NaN matching NaN and inf matching inf."""
    a = np.asarray(ours, dtype=float)
    b = np.asarray(theirs, dtype=float)
    assert a.shape == b.shape, f"{what}: shapes {a.shape} vs {b.shape}"
    assert np.array_equal(np.isnan(a), np.isnan(b)), f"{what}: NaN pattern differs: ours {a}, peer {b}"
    ok = np.isclose(a, b, rtol=0.0, atol=TOL, equal_nan=True) | (a == b)
    assert ok.all(), f"{what}: ours {a}, peer {b}, max |diff| {np.nanmax(np.abs(a - b))}"


def nan_to_zero(x) -> np.ndarray:
    return np.nan_to_num(np.asarray(x, dtype=float), nan=0.0)


def between(sl: SliceAudit, metric: str) -> float:
    return float(sl.disparity(metric, convention="between_groups")["value"].iloc[0])


def to_reference(sl: SliceAudit, metric: str, group: str) -> float:
    rows = sl.disparity(metric, convention="to_reference")
    return float(rows.loc[rows["group"] == group, "value"].iloc[0])


def pandas_spread(x) -> float:
    """``MetricFrame.difference(between_groups)``: max - min over non-NaN groups (0 for one group)."""
    x = pd.Series(np.asarray(x, dtype=float))
    return float(x.max() - x.min())


def ours_in_fairlearn_convention(ours: float, peer_groups) -> float:
    """Our between-groups gap, mapped to fairlearn's: with one defined group fairlearn says 0, we say NaN."""
    defined = int(np.sum(~np.isnan(np.asarray(peer_groups, dtype=float))))
    if defined == 1:
        assert np.isnan(ours)
        return 0.0
    return ours


def by_label(frame: pd.DataFrame | pd.Series) -> pd.DataFrame | pd.Series:
    """Re-index a MetricFrame.by_group result by our group labels (' × ' joined for intersections)."""
    index = frame.index
    if isinstance(index, pd.MultiIndex):
        labels = [" × ".join(map(str, key)) for key in index]
    else:
        labels = [str(v) for v in index]
    out = frame.copy()
    out.index = pd.Index(labels)
    return out


def sample_params(names, w) -> dict:
    return {} if w is None else {"sample_params": {name: {"sample_weight": w} for name in names}}


# ---------------------------------------------------------------------------------------------
# fairlearn / scikit-learn: rates by group through MetricFrame
# ---------------------------------------------------------------------------------------------

NAN = float("nan")
LABEL_METRICS = {
    # peer id: (callable, our column, mapping of our value to the peer's convention)
    "fairlearn.metrics.selection_rate": (fairlearn_metrics.selection_rate, "selection_rate", None),
    "fairlearn.metrics.true_positive_rate": (fairlearn_metrics.true_positive_rate, "tpr", nan_to_zero),
    "fairlearn.metrics.false_positive_rate": (fairlearn_metrics.false_positive_rate, "fpr", nan_to_zero),
    "fairlearn.metrics.true_negative_rate": (fairlearn_metrics.true_negative_rate, "tnr", nan_to_zero),
    "fairlearn.metrics.false_negative_rate": (fairlearn_metrics.false_negative_rate, "fnr", nan_to_zero),
    "sklearn.metrics.accuracy_score": (skm.accuracy_score, "accuracy", None),
    "sklearn.metrics.precision_score": (skm.precision_score, "ppv", nan_to_zero),
    "sklearn.metrics.precision_score(zero_division=nan)": (
        functools.partial(skm.precision_score, zero_division=NAN), "ppv", None),
    "sklearn.metrics.recall_score(zero_division=nan)": (functools.partial(skm.recall_score, zero_division=NAN), "tpr", None),
    "sklearn.metrics.recall_score(pos_label=0,zero_division=nan)": (
        functools.partial(skm.recall_score, pos_label=0, zero_division=NAN), "tnr", None),
    "sklearn.metrics.balanced_accuracy_score": (skm.balanced_accuracy_score, "balanced_accuracy", "present_classes"),
}


def _roc_auc(y_true, y_score, sample_weight=None):
    try:  # scikit-learn 1.9 returns NaN (with a warning) for one class; older versions raise
        return skm.roc_auc_score(y_true, y_score, sample_weight=sample_weight)
    except ValueError:
        return NAN


SCORE_METRICS = {
    "sklearn.metrics.roc_auc_score": (_roc_auc, "auc"),
    "sklearn.metrics.brier_score_loss": (skm.brier_score_loss, "brier"),
}


@functools.cache
def label_frame(scenario: str, weighting: str, seed: int, slice_name: str) -> MetricFrame:
    c = case(scenario, weighting, seed)
    metrics = {name: fn for name, (fn, _, _) in LABEL_METRICS.items()}
    return MetricFrame(metrics=metrics, y_true=c.y, y_pred=c.p, sensitive_features=c.sensitive(slice_name),
                       **sample_params(metrics, c.w))


@functools.cache
def score_frame(scenario: str, weighting: str, seed: int, slice_name: str) -> MetricFrame:
    c = case(scenario, weighting, seed)
    metrics = {name: fn for name, (fn, _) in SCORE_METRICS.items()}
    return MetricFrame(metrics=metrics, y_true=c.y, y_pred=c.s, sensitive_features=c.sensitive(slice_name),
                       **sample_params(metrics, c.w))


def _expected_in_peer_convention(table: pd.DataFrame, column: str, mapping) -> np.ndarray:
    ours = table[column].to_numpy(dtype=float)
    if mapping is None:
        return ours
    if mapping == "present_classes":  # sklearn: mean recall of the classes present in the group
        return np.nanmean(np.stack([table["tpr"].to_numpy(float), table["tnr"].to_numpy(float)]), axis=0)
    return mapping(ours)


@pytest.mark.parametrize("peer", list(LABEL_METRICS))
@pytest.mark.parametrize(("scenario", "weighting", "seed", "slice_name"), slice_cases())
def test_rates_by_group_match_metricframe(scenario, weighting, seed, peer, slice_name):
    """MetricFrame(metrics=peer).by_group == our groups_table column (one and two sensitive columns)."""
    table = case(scenario, weighting, seed).result.slice(slice_name).groups_table
    by_group = by_label(label_frame(scenario, weighting, seed, slice_name).by_group)
    assert sorted(by_group.index) == sorted(table.index), "intersection groups differ"
    _, column, mapping = LABEL_METRICS[peer]
    expected = _expected_in_peer_convention(table, column, mapping)
    assert_same(expected, by_group.loc[table.index, peer].to_numpy(float), f"{peer} by group vs {column}")


@pytest.mark.parametrize("peer", list(SCORE_METRICS))
@pytest.mark.parametrize(("scenario", "weighting", "seed", "slice_name"), slice_cases())
def test_score_metrics_by_group_match_metricframe(scenario, weighting, seed, peer, slice_name):
    """roc_auc_score (weighted too, ties counted 1/2) and brier_score_loss per group; one-class groups: NaN AUC both sides."""
    table = case(scenario, weighting, seed).result.slice(slice_name).groups_table
    by_group = by_label(score_frame(scenario, weighting, seed, slice_name).by_group)
    _, column = SCORE_METRICS[peer]
    assert_same(table[column].to_numpy(float), by_group.loc[table.index, peer].to_numpy(float), f"{peer} by group")


@pytest.mark.parametrize(("scenario", "weighting", "seed"), CASES)
def test_overall_matches_sklearn(scenario, weighting, seed):
    """Audit.overall: fairlearn.metrics.selection_rate, sklearn accuracy/precision/recall/balanced_accuracy/roc_auc/brier."""
    c = case(scenario, weighting, seed)
    overall = c.result.overall.set_index("metric")["value"]
    kw = {"sample_weight": c.w}
    peers = {
        "selection_rate": fairlearn_metrics.selection_rate(c.y, c.p, **kw),
        "base_rate": np.average(c.y, weights=c.w),
        "accuracy": skm.accuracy_score(c.y, c.p, **kw),
        "ppv": skm.precision_score(c.y, c.p, zero_division=NAN, **kw),
        "tpr": skm.recall_score(c.y, c.p, zero_division=NAN, **kw),
        "tnr": skm.recall_score(c.y, c.p, pos_label=0, zero_division=NAN, **kw),
        "fpr": fairlearn_metrics.false_positive_rate(c.y, c.p, **kw),
        "fnr": fairlearn_metrics.false_negative_rate(c.y, c.p, **kw),
        "balanced_accuracy": skm.balanced_accuracy_score(c.y, c.p, **kw),
        "auc": skm.roc_auc_score(c.y, c.s, **kw),
        "brier": skm.brier_score_loss(c.y, c.s, **kw),
    }
    for name, value in peers.items():
        assert_same(overall[name], value, f"overall {name}")


# ---------------------------------------------------------------------------------------------
# fairlearn: disparity functions and MetricFrame.difference / ratio
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("scenario", "weighting", "seed", "slice_name"), slice_cases())
def test_metricframe_difference_and_ratio(scenario, weighting, seed, slice_name):
    """fairlearn.metrics.MetricFrame.difference (fpr, fnr, accuracy, precision, ...) and .ratio (selection rate).

    Undefined groups: fairlearn's fpr/fnr count them as 0 (mapped: ours with NaN -> 0),
    the NaN-aware recall_score peers skip them as we do.
    """
    c = case(scenario, weighting, seed)
    sl = c.result.slice(slice_name)
    table = sl.groups_table
    mf = label_frame(scenario, weighting, seed, slice_name)
    diff, ratio = mf.difference(), mf.ratio()
    by_group = by_label(mf.by_group).loc[table.index]

    # Directly comparable (no undefined values on either side, or NaN on both).
    assert_same(between(sl, "demographic_parity_difference"), diff["fairlearn.metrics.selection_rate"],
                "MetricFrame(selection_rate).difference")
    assert_same(between(sl, "demographic_parity_ratio"), ratio["fairlearn.metrics.selection_rate"],
                "MetricFrame(selection_rate).ratio")
    assert_same(between(sl, "disparate_impact"), ratio["fairlearn.metrics.selection_rate"], "MetricFrame(selection_rate).ratio")
    assert_same(between(sl, "accuracy_difference"), diff["sklearn.metrics.accuracy_score"],
                "MetricFrame(accuracy_score).difference")

    # NaN-aware peers: undefined groups are skipped on both sides.
    tpr_peer = by_group["sklearn.metrics.recall_score(zero_division=nan)"]
    tnr_peer = by_group["sklearn.metrics.recall_score(pos_label=0,zero_division=nan)"]
    ppv_peer = by_group["sklearn.metrics.precision_score(zero_division=nan)"]
    d_tpr = diff["sklearn.metrics.recall_score(zero_division=nan)"]
    d_tnr = diff["sklearn.metrics.recall_score(pos_label=0,zero_division=nan)"]
    d_ppv = diff["sklearn.metrics.precision_score(zero_division=nan)"]
    assert_same(ours_in_fairlearn_convention(between(sl, "equal_opportunity_difference"), tpr_peer), d_tpr,
                "MetricFrame(recall_score(zero_division=nan)).difference")
    assert_same(ours_in_fairlearn_convention(between(sl, "fnr_difference"), tpr_peer), d_tpr,
                "MetricFrame(recall_score).difference as FNR gap")
    assert_same(ours_in_fairlearn_convention(between(sl, "fpr_difference"), tnr_peer), d_tnr,
                "MetricFrame(recall_score(pos_label=0)).difference as FPR gap")
    assert_same(ours_in_fairlearn_convention(between(sl, "predictive_parity_difference"), ppv_peer), d_ppv,
                "MetricFrame(precision_score(zero_division=nan)).difference")

    # fairlearn's own fpr/fnr (0 for undefined groups): mapped.
    assert_same(pandas_spread(nan_to_zero(table["fpr"])), diff["fairlearn.metrics.false_positive_rate"],
                "MetricFrame(false_positive_rate).difference (undefined -> 0)")
    assert_same(pandas_spread(nan_to_zero(table["fnr"])), diff["fairlearn.metrics.false_negative_rate"],
                "MetricFrame(false_negative_rate).difference (undefined -> 0)")
    if not table["fpr"].isna().any():
        assert_same(between(sl, "fpr_difference"), diff["fairlearn.metrics.false_positive_rate"],
                    "MetricFrame(false_positive_rate).difference")
    if not table["fnr"].isna().any():
        assert_same(between(sl, "fnr_difference"), diff["fairlearn.metrics.false_negative_rate"],
                    "MetricFrame(false_negative_rate).difference")


def _fairlearn_disparities(c: Case, slice_name: str) -> dict[str, float]:
    kw = dict(sensitive_features=c.sensitive(slice_name), sample_weight=c.w)
    return {
        "demographic_parity_difference": fairlearn_metrics.demographic_parity_difference(c.y, c.p, **kw),
        "demographic_parity_ratio": fairlearn_metrics.demographic_parity_ratio(c.y, c.p, **kw),
        "equalized_odds_difference": fairlearn_metrics.equalized_odds_difference(c.y, c.p, agg="worst_case", **kw),
        "equalized_odds_difference_mean": fairlearn_metrics.equalized_odds_difference(c.y, c.p, agg="mean", **kw),
        "equal_opportunity_difference": fairlearn_metrics.equal_opportunity_difference(c.y, c.p, **kw),
    }


@pytest.mark.parametrize(("scenario", "weighting", "seed", "slice_name"), slice_cases())
def test_fairlearn_disparity_functions(scenario, weighting, seed, slice_name):
    """fairlearn.metrics.demographic_parity_difference / demographic_parity_ratio /
    equalized_odds_difference(agg='worst_case' and 'mean') / equal_opportunity_difference.

    fairlearn counts a group with no positives (negatives) as TPR (FPR) 0; where every
    group is defined ours must equal fairlearn's exactly, otherwise fairlearn's value must
    equal ours recomputed with NaN -> 0 (the documented mapping).
    """
    c = case(scenario, weighting, seed)
    sl = c.result.slice(slice_name)
    table = sl.groups_table
    peer = _fairlearn_disparities(c, slice_name)
    assert_same(between(sl, "demographic_parity_difference"), peer["demographic_parity_difference"],
                "fairlearn.metrics.demographic_parity_difference")
    assert_same(between(sl, "demographic_parity_ratio"), peer["demographic_parity_ratio"],
                "fairlearn.metrics.demographic_parity_ratio")

    tpr0, fpr0 = pandas_spread(nan_to_zero(table["tpr"])), pandas_spread(nan_to_zero(table["fpr"]))
    assert_same(max(tpr0, fpr0), peer["equalized_odds_difference"], "fairlearn.metrics.equalized_odds_difference (mapped)")
    assert_same((tpr0 + fpr0) / 2, peer["equalized_odds_difference_mean"],
                "fairlearn.metrics.equalized_odds_difference(agg='mean') (mapped)")
    assert_same(tpr0, peer["equal_opportunity_difference"], "fairlearn.metrics.equal_opportunity_difference (mapped)")
    if not table[["tpr", "fpr"]].isna().any().any():
        for name in ("equalized_odds_difference", "equalized_odds_difference_mean", "equal_opportunity_difference"):
            assert_same(between(sl, name), peer[name], f"fairlearn.metrics.{name}")


def test_empty_scenario_really_has_undefined_groups():
    """Guard: the 'empty' cases do exercise undefined TPR, FPR and PPV (and fairlearn's 0 convention)."""
    c = case("empty", "weighted", 0)
    table = c.result.slice("g").groups_table
    assert np.isnan(table.loc["g0", "tpr"]) and np.isnan(table.loc["g1", "ppv"]) and np.isnan(table.loc["g2", "fpr"])
    undefined = {(u["group"], u["metric"]) for u in c.result.slice("g").undefined}
    assert {("g0", "tpr"), ("g1", "ppv"), ("g2", "fpr"), ("g0", "auc")} <= undefined
    mf = label_frame("empty", "weighted", 0, "g").by_group
    assert mf.loc["g0", "fairlearn.metrics.true_positive_rate"] == 0.0
    assert np.isnan(mf.loc["g0", "sklearn.metrics.recall_score(zero_division=nan)"])


def test_single_defined_group_fairlearn_gives_zero_we_give_nan():
    """Two groups, one without positives: fairlearn's gap over the one defined TPR is 0, ours NaN (documented)."""
    y = np.array([0, 0, 0, 0, 1, 1, 0, 0])
    p = np.array([1, 0, 0, 0, 1, 0, 1, 0])
    g = np.array(["a"] * 4 + ["b"] * 4)
    result = audit(y_true=y, y_pred=p, sensitive=pd.Series(g, name="g"), n_boot=0)
    sl = result.slice("g")
    assert np.isnan(between(sl, "equal_opportunity_difference"))
    mf = MetricFrame(metrics=functools.partial(skm.recall_score, zero_division=NAN), y_true=y, y_pred=p, sensitive_features=g)
    assert mf.difference() == 0.0
    # fairlearn's own function counts group a's TPR as 0:
    assert fairlearn_metrics.equal_opportunity_difference(y, p, sensitive_features=g) == pytest.approx(0.5)


# ---------------------------------------------------------------------------------------------
# AIF360: classic API, privileged = our reference group
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AifData:
    truth: object
    predicted: object
    codes: dict[str, dict[str, float]]


@functools.cache
def aif_data(scenario: str, weighting: str, seed: int, repeat: bool = False) -> AifData:
    c = case(scenario, weighting, seed) if not repeat else integer_weight_case(scenario, seed)
    codes = {col: {v: float(i) for i, v in enumerate(sorted(set(vals)))} for col, vals in (("g", c.g), ("h", c.h))}
    y, p, g, h, w = c.y, c.p, c.g, c.h, c.w
    if repeat:  # integer weights as repeated rows, unweighted
        reps = c.w.astype(int)
        y, p, g, h, w = (np.repeat(a, reps) for a in (y, p, g, h, np.ones_like(c.w)))
    frame = pd.DataFrame({
        "g": [codes["g"][v] for v in g], "h": [codes["h"][v] for v in h],
        "y": y.astype(float), "w": np.ones(y.size) if w is None else w,
    })
    truth = BinaryLabelDataset(df=frame, label_names=["y"], protected_attribute_names=["g", "h"],
                               favorable_label=1.0, unfavorable_label=0.0, instance_weights_name="w")
    predicted = truth.copy(deepcopy=True)
    predicted.labels = p.astype(float).reshape(-1, 1)
    return AifData(truth=truth, predicted=predicted, codes=codes)


def aif_condition(d: AifData, sl: SliceAudit, label: str) -> list[dict[str, float]]:
    key = sl.keys[sl.groups.index(label)]
    return [{col: d.codes[col][value] for col, value in zip(sl.columns, key)}]


def aif_metric(d: AifData, sl: SliceAudit, group: str) -> object:
    """ClassificationMetric with privileged = our reference group, unprivileged = ``group``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ClassificationMetric(d.truth, d.predicted, unprivileged_groups=aif_condition(d, sl, group),
                                    privileged_groups=aif_condition(d, sl, sl.reference))


def _call(fn, *args, **kwargs) -> float:
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        return float(fn(*args, **kwargs))


AIF_TO_REFERENCE = {
    # AIF360 ClassificationMetric method: our to_reference disparity (sign)
    "statistical_parity_difference": ("demographic_parity_difference", 1.0),
    "equal_opportunity_difference": ("equal_opportunity_difference", 1.0),
    "true_positive_rate_difference": ("equal_opportunity_difference", 1.0),
    "average_odds_difference": ("average_odds_difference", 1.0),
    "average_abs_odds_difference": ("equalized_odds_difference_mean", 1.0),
    "false_positive_rate_difference": ("fpr_difference", 1.0),
    "false_negative_rate_difference": ("fnr_difference", 1.0),
    "error_rate_difference": ("accuracy_difference", -1.0),
}

AIF_RATES = {  # AIF360 ClassificationMetric per-group method: (our column, AIF360 value for an undefined group)
    "true_positive_rate": ("tpr", NAN), "false_positive_rate": ("fpr", NAN),
    "true_negative_rate": ("tnr", NAN), "false_negative_rate": ("fnr", NAN),
    "positive_predictive_value": ("ppv", 0.0), "negative_predictive_value": ("npv", 0.0),
    "false_discovery_rate": ("fdr", 0.0), "false_omission_rate": ("for", 0.0),
    "accuracy": ("accuracy", 0.0), "selection_rate": ("selection_rate", NAN),
}


@pytest.mark.parametrize(("scenario", "weighting", "seed", "slice_name"), slice_cases("h"))
def test_aif360_classification_metric_to_reference(scenario, weighting, seed, slice_name):
    """aif360 ClassificationMetric: statistical_parity_difference, disparate_impact, equal_opportunity_difference,
    average_odds_difference, average_abs_odds_difference, false_positive_rate_difference,
    false_negative_rate_difference, error_rate_difference (= -accuracy_difference), equalized_odds_difference,
    positive_predictive_value, and every per-group rate, pairwise against our reference group (instance weights
    = our sample weights)."""
    c = case(scenario, weighting, seed)
    sl = c.result.slice(slice_name)
    table = sl.groups_table
    d = aif_data(scenario, weighting, seed)
    others = [g for g in sl.groups if g != sl.reference]
    for group in others:
        m = aif_metric(d, sl, group)
        for method, (ours, sign) in AIF_TO_REFERENCE.items():
            assert_same(sign * to_reference(sl, ours, group), _call(getattr(m, method)),
                        f"aif360 ClassificationMetric.{method} [{group} vs {sl.reference}]")

        # disparate_impact: NaN for us where the reference selection rate is 0; AIF360 divides anyway.
        di = _call(m.disparate_impact)
        for name in ("disparate_impact", "demographic_parity_ratio"):
            ours = to_reference(sl, name, group)
            if table.loc[sl.reference, "selection_rate"] > 0:
                assert_same(ours, di, f"aif360 ClassificationMetric.disparate_impact vs {name}")
            else:
                assert np.isnan(ours) and (np.isinf(di) or np.isnan(di))

        # equalized_odds_difference: AIF360 is Python max(|dFPR|, |dTPR|) (ignores a NaN second argument).
        eod = _call(m.equalized_odds_difference)
        d_fpr, d_tpr = to_reference(sl, "fpr_difference", group), to_reference(sl, "equal_opportunity_difference", group)
        ours = to_reference(sl, "equalized_odds_difference", group)
        if np.isnan(d_tpr) and not np.isnan(d_fpr):
            assert np.isnan(ours)
            assert_same(abs(d_fpr), eod, "aif360 equalized_odds_difference with undefined TPR (mapped)")
        else:
            assert_same(ours, eod, "aif360 ClassificationMetric.equalized_odds_difference")

        # positive_predictive_value(privileged=False) - (privileged=True): AIF360 uses 0 for an undefined PPV.
        ppv_gap = _call(m.positive_predictive_value, privileged=False) - _call(m.positive_predictive_value, privileged=True)
        expected = nan_to_zero(table.loc[group, "ppv"]) - nan_to_zero(table.loc[sl.reference, "ppv"])
        assert_same(expected, ppv_gap, "aif360 positive_predictive_value difference (undefined -> 0)")
        if not np.isnan(table.loc[[group, sl.reference], "ppv"]).any():
            assert_same(to_reference(sl, "predictive_parity_difference", group), ppv_gap,
                        "aif360 positive_predictive_value difference")

        # Per-group rates and weighted confusion counts for both sides of the pair.
        sides = [(group, False)] + ([(sl.reference, True)] if group == others[0] else [])
        for label, privileged in sides:
            for method, (column, undefined) in AIF_RATES.items():
                ours = table.loc[label, column]
                expected = undefined if np.isnan(ours) else ours
                assert_same(expected, _call(getattr(m, method), privileged=privileged),
                            f"aif360 ClassificationMetric.{method}({label})")
            assert_same(table.loc[label, "weight"], _call(m.num_instances, privileged=privileged),
                        f"aif360 num_instances({label})")


@pytest.mark.parametrize(("scenario", "weighting", "seed", "slice_name"), slice_cases())
def test_aif360_binary_label_dataset_metric(scenario, weighting, seed, slice_name):
    """aif360 BinaryLabelDatasetMetric: base_rate per group (true labels), and on the predicted labels
    statistical_parity_difference / disparate_impact to the reference group."""
    c = case(scenario, weighting, seed)
    sl = c.result.slice(slice_name)
    table = sl.groups_table
    d = aif_data(scenario, weighting, seed)
    for group in sl.groups:
        if group == sl.reference:
            continue
        cond = dict(unprivileged_groups=aif_condition(d, sl, group), privileged_groups=aif_condition(d, sl, sl.reference))
        on_truth = BinaryLabelDatasetMetric(d.truth, **cond)
        on_pred = BinaryLabelDatasetMetric(d.predicted, **cond)
        assert_same(table.loc[group, "base_rate"], _call(on_truth.base_rate, privileged=False), "aif360 base_rate")
        assert_same(table.loc[sl.reference, "base_rate"], _call(on_truth.base_rate, privileged=True), "aif360 base_rate (ref)")
        assert_same(to_reference(sl, "demographic_parity_difference", group), _call(on_pred.statistical_parity_difference),
                    "aif360 BinaryLabelDatasetMetric.statistical_parity_difference")
        if table.loc[sl.reference, "selection_rate"] > 0:
            assert_same(to_reference(sl, "disparate_impact", group), _call(on_pred.disparate_impact),
                        "aif360 BinaryLabelDatasetMetric.disparate_impact")


# ---------------------------------------------------------------------------------------------
# AIF360: entropy indices (unweighted in AIF360)
# ---------------------------------------------------------------------------------------------


def _ge_metric(d: AifData, sl: SliceAudit) -> object:
    """A ClassificationMetric over a two-group slice (for the between-group indices)."""
    a, b = sl.groups
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ClassificationMetric(d.truth, d.predicted, unprivileged_groups=aif_condition(d, sl, b),
                                    privileged_groups=aif_condition(d, sl, a))


def _check_entropy(result: Audit, d: AifData, what: str) -> None:
    overall = result.overall.set_index("metric")["value"]
    m = ClassificationMetric(d.truth, d.predicted)
    assert_same(overall["theil_index"], _call(m.theil_index), f"aif360 theil_index {what}")
    assert_same(overall["generalized_entropy_index"], _call(m.generalized_entropy_index, alpha=2),
                f"aif360 generalized_entropy_index(alpha=2) {what}")
    for alpha in (0.5, 1.5, 3.0):
        assert_same(generalized_entropy_index(result.table.w, alpha=alpha), _call(m.generalized_entropy_index, alpha=alpha),
                    f"aif360 generalized_entropy_index(alpha={alpha}) {what}")

    # Between groups: 'h' has two groups in every scenario, 'g' in the 2-group scenario.
    for sl in result.slices:
        if len(sl.groups) == 2:
            m2 = _ge_metric(d, sl)
            assert_same(between(sl, "between_group_theil_index"), _call(m2.between_group_theil_index),
                        f"aif360 between_group_theil_index [{sl.name}] {what}")
            assert_same(between(sl, "between_group_generalized_entropy_index"),
                        _call(m2.between_group_generalized_entropy_index, alpha=2),
                        f"aif360 between_group_generalized_entropy_index [{sl.name}] {what}")
            w = result.table.marginal(sl.columns)[0].w
            for alpha in (0.5, 3.0):
                assert_same(between_group_entropy_index(w, alpha=alpha),
                            _call(m2.between_group_generalized_entropy_index, alpha=alpha),
                            f"aif360 between_group_generalized_entropy_index(alpha={alpha}) [{sl.name}] {what}")
        else:  # several groups: AIF360's (private) all-groups form with every group listed
            m_all = ClassificationMetric(d.truth, d.predicted)
            groups = [aif_condition(d, sl, label) for label in sl.groups]
            w = result.table.marginal(sl.columns)[0].w
            for alpha in (1, 2):
                assert_same(between_group_entropy_index(w, alpha=alpha),
                            _call(m_all._between_group_generalized_entropy_index, groups=groups, alpha=alpha),
                            f"aif360 _between_group_generalized_entropy_index(alpha={alpha}) [{sl.name}] {what}")


@pytest.mark.parametrize(("scenario", "weighting", "seed"), UNWEIGHTED_CASES)
def test_aif360_entropy_indices(scenario, weighting, seed):
    """aif360 ClassificationMetric.theil_index / generalized_entropy_index (alpha 2 and others) /
    between_group_theil_index / between_group_generalized_entropy_index (unweighted)."""
    _check_entropy(case(scenario, weighting, seed).result, aif_data(scenario, weighting, seed), "")


@functools.cache
def integer_weight_case(scenario: str, seed: int) -> Case:
    y, p, s, g, h, w = make_data(scenario, "weighted", seed, integer_weights=True)
    result = audit(y_true=y, y_pred=p, sensitive=pd.DataFrame({"g": g, "h": h}), y_score=s, sample_weight=w, n_boot=0)
    return Case(y=y, p=p, s=s, g=g, h=h, w=w, result=result)


@pytest.mark.parametrize("seed", range(0, N_SEEDS, 3))
@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_aif360_entropy_indices_integer_weights_as_repeated_rows(scenario, seed):
    """Our weighted indices with integer weights == aif360 theil_index / generalized_entropy_index on repeated rows."""
    _check_entropy(integer_weight_case(scenario, seed).result, aif_data(scenario, "weighted", seed, repeat=True),
                   "(integer weights = repeated rows)")


@pytest.mark.parametrize("seed", range(5))
def test_aif360_entropy_alpha_zero_mapping(seed):
    """aif360 generalized_entropy_index(alpha=0) is -mean(ln(b/mu)) / mu, ours -mean(ln(b/mu)) (Speicher et al.):
    on data without false negatives (all benefits > 0) AIF360's value is ours / mu; with a false negative both are inf."""
    rng = np.random.default_rng(seed)
    n = 200
    y = rng.integers(0, 2, n)
    p = np.where(y == 1, 1, rng.integers(0, 2, n))  # no false negatives
    g = rng.choice(["a", "b"], n)
    result = audit(y_true=y, y_pred=p, sensitive=pd.Series(g, name="g"), n_boot=0)
    frame = pd.DataFrame({"g": (g == "b").astype(float), "y": y.astype(float)})
    truth = BinaryLabelDataset(df=frame, label_names=["y"], protected_attribute_names=["g"])
    predicted = truth.copy(deepcopy=True)
    predicted.labels = p.astype(float).reshape(-1, 1)
    m = ClassificationMetric(truth, predicted)
    mu = float(np.mean(p - y + 1))
    assert_same(generalized_entropy_index(result.table.w, alpha=0) / mu, _call(m.generalized_entropy_index, alpha=0),
                "aif360 generalized_entropy_index(alpha=0) (mapped: / mu)")
    predicted.labels[np.flatnonzero(y == 1)[0]] = 0.0  # one false negative: benefit 0, ln 0
    result = audit(y_true=y, y_pred=predicted.labels.ravel(), sensitive=pd.Series(g, name="g"), n_boot=0)
    assert np.isposinf(generalized_entropy_index(result.table.w, alpha=0))
    assert np.isposinf(_call(ClassificationMetric(truth, predicted).generalized_entropy_index, alpha=0))
