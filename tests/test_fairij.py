"""FairIJ selection and repair on a tiny randomly initialised BERT with a planted group-label bias.

The training rows are short reviews whose label follows the sentiment word (10% noise), except a planted
15% whose label follows the group word instead ("alpha" -> 1, "beta" -> 0); the validation rows are clean
(sentiment independent of group).  A 2-token task prompt + head (float64, L2, full-batch L-BFGS in rounds of 100
iterations until the objective's gradient norm is below 1e-2: 7e-3 after one round on the machine that set this up,
0.0102 on another, which a second round fixes; much longer runs reach a steep region of this random backbone) picks up
the group word, so the validation demographic-parity gap is clearly positive, and the
planted rows are the ones whose removal should close it.
"""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest
import torch

from factories import lbfgs_to_tolerance
from fairprompt.errors import FairpromptError
from fairprompt.metrics.point import group_gap
from fairprompt.mitigation import AppendTraining, FairIJConfig, FairIJResult, fairij, train_appended_prompt
from fairprompt.mitigation.fairij_method import selection
from fairprompt.models.frozen import state_sha256
from fairprompt.models.text import FrozenTextClassifier, TextRows
from fairprompt.models.training import TrainConfig
from fairprompt.prompts import SoftPrompt, load_prompt

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one thread (tests/conftest.py)

L2 = 3e-2
GOOD = ["good", "great", "fine", "happy", "nice"]
BAD = ["bad", "awful", "poor", "sad", "rude"]
NOUNS = ["food", "staff", "room", "trip", "show"]
QUICK_APPEND = AppendTraining(max_epochs=3, patience=2, batch_size=32, lr=5e-2)
QUICK_APPEND_TRAINING = TrainConfig(max_epochs=3, patience=2, batch_size=32, lr=5e-2, head_lr=None, seed=0)
# fairij's keywords; the rest is config
CALL = ("train_ids", "scores", "keep_scores", "output_dir", "threshold", "group_column", "progress")


def _texts(n: int, seed: int, *, planted: float) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """Reviews: label = sentiment (10% noise) or, for a ``planted`` share, label = group; returns texts, y, group, planted."""
    rng = np.random.default_rng(seed)
    texts, labels, groups, marks = [], [], [], []
    for _ in range(n):
        g = int(rng.integers(0, 2))
        positive = bool(rng.random() < 0.5)
        word = (GOOD if positive else BAD)[rng.integers(5)]
        mark = bool(rng.random() < planted)
        label = g if mark else (int(positive) if rng.random() > 0.1 else 1 - int(positive))
        texts.append(f"{['beta', 'alpha'][g]} said the {NOUNS[rng.integers(5)]} was {word}")
        labels.append(label)
        groups.append(["beta", "alpha"][g])
        marks.append(mark)
    return texts, np.array(labels), np.array(groups), np.array(marks)


def _refit(model: FrozenTextClassifier, rows, *, tol: float) -> float:
    """Full-batch L-BFGS of (1/n) sum CE_i + (L2/2)|theta|^2 on the task prompt and head, in rounds of 100 iterations
    until the gradient norm is below ``tol`` (:func:`factories.lbfgs_to_tolerance`); returns the norm."""
    batch = rows.collate(list(range(len(rows))))
    params = model.task_parameters()
    y = batch["labels"].to(torch.float64)

    def objective() -> torch.Tensor:
        z, _ = model.margins_and_features(batch["input_ids"], batch["attention_mask"])
        return (torch.nn.functional.softplus(z) - y * z).mean() + 0.5 * L2 * sum((p * p).sum() for p in params)

    return lbfgs_to_tolerance(objective, params, tol=tol, max_iter=100, max_rounds=5)


@pytest.fixture(scope="module")
def biased(tiny_backbone):
    model = FrozenTextClassifier.with_task_prompt(backbone=tiny_backbone, num_virtual_tokens=2, init="random", seed=0)
    model = model.to(torch.float64)
    texts, y, _, planted = _texts(200, 0, planted=0.15)
    vtexts, yv, gv, _ = _texts(160, 1, planted=0.0)
    train, validation = model.encode(texts, labels=y), model.encode(vtexts, labels=yv)
    assert _refit(model, train, tol=1e-2) < 1e-2
    for p in model.task_parameters():
        p.requires_grad_(False)
    return model, train, validation, gv, planted


def _hashes(model: FrozenTextClassifier) -> tuple[str, list[str]]:
    return state_sha256(model.encoder), [state_sha256({"t": p.detach()}) for p in model.task_parameters()]


def _run(biased, **kwargs) -> FairIJResult:
    model, train, validation, gv, _ = biased
    call = {k: kwargs.pop(k) for k in CALL if k in kwargs}
    options = {"l2": L2, "append_training": QUICK_APPEND, "utility_budget": 0.02, "max_fraction": 0.2, **kwargs}
    return fairij(model=model, train_rows=train, validation_rows=validation, validation_groups=gv,
                  config=FairIJConfig(**options), **call)


def test_selection_respects_the_budget_and_max_fraction_on_the_validation_split(biased) -> None:
    model, train, validation, gv, _ = biased
    n = len(train)
    calls: list[str] = []
    result = _run(biased, mode="ij", progress=lambda what, done, total: calls.append(what))
    assert result.rule == selection.RULES["actual"] and result.selection == "actual" and calls
    chosen = result.chosen
    assert 0 < result.chosen_k <= 0.2 * n and chosen["k"] == result.chosen_k
    assert chosen["actual_dU"] <= 0.02 and chosen["feasible_actual"]
    feasible = [p for p in result.curve if p["feasible_actual"]]
    assert chosen["actual_F"] == min(p["actual_F"] for p in feasible)
    assert any(not p["feasible_actual"] for p in result.curve)  # the budget binds in this case
    assert max(p["k"] for p in result.curve) <= 0.2 * n
    # binary weights: exactly the top-k rows by I_F (all with I_F < 0) are removed
    order = np.argsort(result.influence_fairness, kind="stable")
    assert set(np.flatnonzero(result.flagged)) == set(order[:result.chosen_k])
    assert (result.influence_fairness[result.flagged] < 0).all() and set(np.unique(result.weights)) == {0.0, 1.0}
    assert chosen["predicted_dF"] == pytest.approx(result.influence_fairness[result.flagged].sum())
    # the curves are validation values: k = 0 is the input model on the validation rows, the chosen point is the
    # repaired model on them, and the first-order prediction tracks the one-step update on the way
    assert result.before["fairness"] == pytest.approx(result.influence["fairness"], abs=1e-10)
    assert result.curve[0]["k"] == 0 and result.curve[0]["actual_F"] == result.before["fairness"]
    assert selection.evaluate(result.repaired_model, validation, gv, "demographic_parity", None, 64)["fairness"] == \
        pytest.approx(chosen["actual_F"], abs=1e-10)
    small = [p for p in result.curve if 0 < p["k"] <= 0.05 * n]
    assert all(p["actual_dF"] == pytest.approx(p["predicted_dF"], rel=0.1) for p in small)
    assert result.to_dict()["split_used_for_selection"] == "validation"

    # the first-order rule, a tighter share and a zero budget
    predicted = _run(biased, mode="ij", selection="predicted", max_fraction=0.05, utility_budget=0.005)
    assert predicted.rule == selection.RULES["predicted"]
    assert predicted.chosen["predicted_dU"] <= 0.005 and predicted.chosen_k <= 0.05 * n
    assert all(p["k"] <= 0.05 * n for p in predicted.curve)
    zero = _run(biased, mode="ij", utility_budget=0.0)
    assert zero.chosen["actual_dU"] <= 0.0 and zero.chosen_k <= result.chosen_k

    # the accuracy rule: the lowest measured validation gap among the points within max_accuracy_drop of k = 0's
    # validation accuracy; each point's accuracy and gap are those of its one-step model's thresholded decisions
    accurate = _run(biased, mode="ij", selection="accuracy", max_accuracy_drop=0.02, fractions=(0.05, 0.1, 0.2))
    base = accurate.curve[0]
    assert accurate.rule == selection.RULES["accuracy"] and accurate.max_accuracy_drop == 0.02
    within = [p for p in accurate.curve if p["accuracy"] >= base["accuracy"] - 0.02 - 1e-12]
    assert [p["feasible_accuracy"] for p in accurate.curve] == [p in within for p in accurate.curve]
    assert accurate.chosen["gap"] == min(p["gap"] for p in within)
    made = selection.decisions(selection.margins(accurate.repaired_model, validation, 64), 0.5)
    labels = np.asarray(validation.labels)
    assert accurate.chosen["accuracy"] == pytest.approx(float((made == labels).mean()))
    assert accurate.chosen["gap"] == pytest.approx(group_gap(y_true=labels, y_pred=made, groups=gv,
                                                             measure="demographic_parity"))
    assert accurate.to_dict()["max_accuracy_drop"] == 0.02 and result.to_dict()["max_accuracy_drop"] is None
    strict = _run(biased, mode="ij", selection="accuracy", max_accuracy_drop=0.0, fractions=(0.05, 0.1, 0.2))
    assert all(p["accuracy"] >= base["accuracy"] for p in strict.curve if p["chosen"])

    # graded weights: proportional to I_F on the chosen rows, scaled so the predicted utility change meets the budget
    graded = _run(biased, mode="ij", graded=True, selection="predicted", utility_budget=0.01)
    a = graded.alphas
    assert graded.weighting == selection.GRADED_RULE and ((a >= 0) & (a <= 1)).all() and 0 < (a > 0).sum() <= 0.2 * n
    assert graded.chosen["predicted_dU"] <= 0.01 + 1e-12
    top = np.argsort(graded.influence_fairness)[0]
    flagged = np.flatnonzero(a > 0)
    np.testing.assert_allclose(a[flagged] / a[top], graded.influence_fairness[flagged] / graded.influence_fairness[top])
    assert graded.to_dict()["removed_weight"] == pytest.approx(a.sum())


def test_ij_mode_returns_a_new_model_that_is_fairer_on_validation(biased, tmp_path) -> None:
    model, train, validation, gv, planted = biased
    backbone, task = _hashes(model)
    result = _run(biased, mode="ij", verify=True, verify_epochs=10, output_dir=tmp_path)
    repaired = result.repaired_model
    assert repaired is not model and repaired.encoder is model.encoder  # shared, never copied
    assert _hashes(model) == (backbone, task)  # the input model is untouched
    assert _hashes(repaired)[0] == backbone and _hashes(repaired)[1] != task and len(repaired.prompts) == 0
    # the planted bias: validation DP gap 0.058 -> 0.016 (measured), planted rows over-represented among the flagged
    assert result.before["fairness"] > 0.05
    assert result.after["fairness"] < 0.5 * result.before["fairness"]
    assert result.after["utility"] - result.before["utility"] <= 0.02
    assert planted[result.flagged].mean() > 1.5 * planted.mean()  # 1.9x measured
    # verify: paired fine-tuning moves F the predicted way (measured: predicted -0.083, actual -0.045 after 10 epochs)
    check = result.verification.checks[0]
    assert check["rows"] == result.chosen_k and check["predicted_dF"] < 0 and check["actual_dF"] < 0.3 * check["predicted_dF"]
    assert result.verification.epochs == 10 and "paired control" in result.verification.method
    # the repaired adapter is saved beside, and loads back
    assert pathlib.Path(result.artifacts["adapter"]).name == "fairij_adapter"
    loaded = FrozenTextClassifier.load(result.artifacts["adapter"])
    for a, b in zip(loaded.task_parameters(), repaired.task_parameters()):
        torch.testing.assert_close(a.double(), b.double(), rtol=0, atol=1e-6)
    json.dumps(result.to_dict(), allow_nan=False)


def test_append_mode_trains_only_the_appended_tokens(biased, tmp_path) -> None:
    model, train, validation, gv, _ = biased
    backbone, task = _hashes(model)
    result = _run(biased, output_dir=tmp_path)
    repaired, prompt = result.repaired_model, result.prompt
    assert result.mode == "append" and isinstance(prompt, SoftPrompt)
    assert _hashes(model) == (backbone, task) and len(model.prompts) == 0
    assert _hashes(repaired) == (backbone, task)  # task prompt and head frozen, bit for bit
    assert list(repaired.prompts) == [prompt] and prompt.n_tokens == 4 and prompt.config.position == "append"
    initial = SoftPrompt.initialise(prompt.config, embeddings=model.base.get_input_embeddings())
    assert not torch.equal(initial.weight, prompt.weight)  # the appended tokens were trained
    assert not any(p.requires_grad for p in repaired.parameters())
    history = result.append["history"]
    assert 1 <= len(history["epochs"]) <= QUICK_APPEND.max_epochs and history["validation_rows"] == len(validation)
    # the artifact round-trips and reproduces the repaired model on the input model's adapter
    loaded = load_prompt(result.artifacts["prompt"])
    assert torch.equal(loaded.weight, prompt.weight) and loaded.config == prompt.config
    rebuilt = model.adapter_copy()
    rebuilt.prompts.append(loaded)
    batch = validation.collate(list(range(8)))
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(batch["input_ids"], batch["attention_mask"]),
                                   repaired(batch["input_ids"], batch["attention_mask"]))
    # no fairness effect is asserted for append here: on this one-layer random BERT the appended tokens move the
    # validation gap (0.099 -> ~0.07) as much with nothing down-weighted as with the chosen rows removed
    assert np.isfinite([result.after["fairness"], result.after["utility"]]).all() and result.scores is None
    # outputs for results.json and influence.csv
    record = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert record["mode"] == "append" and record["chosen_k"] == result.chosen_k and record["artifacts"]["prompt"]
    assert len(record["top_flagged"]) == min(50, result.chosen_k) and record["curve"][0]["k"] == 0
    assert record["influence"]["curvature"] == "exact GGN (Cholesky)" and "damping" in record["influence"]
    frame = result.influence_frame()
    assert list(frame.columns) == ["row_id", "I_F", "I_U", "flagged", "weight"] and len(frame) == len(train)
    assert (frame.loc[frame.flagged, "weight"] == 0).all() and (frame.loc[~frame.flagged, "weight"] == 1).all()


def test_singular_curvature_raises_the_damping_instead_of_failing(biased) -> None:
    result = _run(biased, mode="ij", l2=0.0, damping=0.0)  # the head's W_0 + W_1 direction has no curvature
    info = result.influence
    assert info["damping_raised"] and info["damping"] > 0 and info["damping_requested"] == 0.0
    assert np.isfinite(result.influence_fairness).all() and np.isfinite(result.influence_utility).all()


def test_bad_input_is_refused(biased, tiny_backbone) -> None:
    model, train, validation, gv, _ = biased
    base = {"model": model, "train_rows": train, "validation_rows": validation, "validation_groups": gv}

    def refused(match: str, **changes) -> None:
        with pytest.raises(FairpromptError, match=match):
            fairij(**{**base, **changes})

    refused("single group", validation_groups=np.full(len(validation), "alpha"))
    refused("validation split is empty", validation_rows=TextRows([], np.zeros(0, np.int64), np.zeros(0, np.float32), 0),
            validation_groups=[])
    refused("one group label per validation row", validation_groups=gv[:-1])
    refused("one id per training row", train_ids=np.arange(len(train) - 1))
    for match, changes in (("utility_budget", {"utility_budget": -0.1}), ("max_fraction", {"max_fraction": 1.5}),
                           ("unknown fairness measure", {"measure": "parity"}), ("unknown fairij mode", {"mode": "refit"}),
                           ("append_tokens", {"append_tokens": 0})):
        with pytest.raises(FairpromptError, match=match):  # the settings are checked when the config is made
            FairIJConfig(**changes)
    refused("FairIJConfig", config={"mode": "ij"})
    refused("training split is empty", train_rows=TextRows([], np.zeros(0, np.int64), np.zeros(0, np.float32), 0))
    trained = FrozenTextClassifier.from_trained_classifier(path=tiny_backbone)
    refused("task_prompt: none", model=trained)


def test_reused_scores_give_the_same_selection_without_scoring_again(biased) -> None:
    model, train, validation, gv, _ = biased
    first = _run(biased, mode="ij", keep_scores=True)
    again = _run(biased, mode="ij", scores=first.scores)
    assert again.timings["scores_reused"] == 1.0 and again.chosen_k == first.chosen_k
    np.testing.assert_array_equal(again.influence_fairness, first.influence_fairness)
    np.testing.assert_array_equal(again.alphas, first.alphas)
    with pytest.raises(FairpromptError, match="damping"):
        _run(biased, mode="ij", scores=first.scores, damping=0.5)
    with pytest.raises(FairpromptError, match="other task-prompt and head parameters"):
        moved = model.adapter_copy()
        with torch.no_grad():
            moved.task_parameters()[0].add_(0.01)
        fairij(model=moved, train_rows=train, validation_rows=validation, validation_groups=gv,
               config=FairIJConfig(l2=L2, mode="ij"), scores=first.scores)


def test_train_appended_prompt_with_any_weights_leaves_the_input_alone(biased) -> None:
    model, train, validation, _, _ = biased
    before = _hashes(model)
    weights = np.where(np.arange(len(train)) % 2 == 0, 2.0, 0.5)
    repaired, prompt, history = train_appended_prompt(model=model, train_rows=train, validation_rows=validation,
                                                      weights=weights, tokens=3, config=QUICK_APPEND_TRAINING, seed=1)
    assert _hashes(model) == before and len(model.prompts) == 0          # the input model is untouched
    assert _hashes(repaired) == before and list(repaired.prompts) == [prompt] and prompt.n_tokens == 3
    assert 1 <= len(history.epochs) and history.train_rows == len(train)
    control, control_prompt, _ = train_appended_prompt(model=model, train_rows=train, validation_rows=validation,
                                                       tokens=3, config=QUICK_APPEND_TRAINING, seed=1)
    assert not torch.equal(control_prompt.weight, prompt.weight)          # the weights changed what was learned
    for bad in (weights[:-1], -weights, np.full(len(train), np.nan)):
        with pytest.raises(FairpromptError, match="one finite weight >= 0 per training row"):
            train_appended_prompt(model=model, train_rows=train, validation_rows=validation, weights=bad)


def test_config_refuses_bad_settings_with_one_sentence_each() -> None:
    for match, changes in (
        ("unknown fairij selection 'best'", {"selection": "best"}),
        ("max_accuracy_drop is 1.5; use a share in", {"max_accuracy_drop": 1.5}),
        ("max_accuracy_drop is -0.01; use a share in", {"max_accuracy_drop": -0.01}),
        ("unknown curvature solver 'lu'", {"solver": "lu"}),
        ("damping must be a finite number >= 0", {"damping": -1.0}),
        ("l2 must be a finite number >= 0", {"l2": float("nan")}),
        ("temperature must be a finite number > 0", {"temperature": 0.0}),
        ("append_init is 'zeros'", {"append_init": "zeros"}),
        ("verify epochs must be an integer >= 1", {"verify_epochs": 0}),
        ("batch_size must be an integer >= 1", {"batch_size": 2.5}),
        ("append_training must be an AppendTraining", {"append_training": {"max_epochs": 2}}),
    ):
        with pytest.raises(FairpromptError, match=match):
            FairIJConfig(**changes)
    with pytest.raises(FairpromptError, match=r"append_training\.patience must be an integer >= 1"):
        AppendTraining(patience=0)
    with pytest.raises(FairpromptError, match=r"append_training\.lr must be a finite number > 0"):
        AppendTraining(lr=0.0)
    # the defaults are the documented ones, and the appended tokens train as the trainer's default says
    config = FairIJConfig()
    assert (config.mode, config.measure, config.damping, config.append_tokens, config.verify) == \
        ("append", "demographic_parity", 1e-3, 4, False)
    from fairprompt.mitigation.fairij_method.repair import DEFAULT_APPEND_TRAINING

    assert config.append_training.train_config() == DEFAULT_APPEND_TRAINING


# ------------------------------------------------------------------------------------------- the one-class guard
def _curve(*rows: tuple[int, float, bool, str | None]) -> list[dict]:
    """Grid points (k, actual F, within the budget, one-class reason); predicted dF follows the actual F."""
    return [{"k": k, "actual_F": F, "predicted_dF": F - 1.0, "gap": F / 2, "feasible_actual": ok,
             "feasible_predicted": ok, "feasible_accuracy": ok, "one_class": mark} for k, F, ok, mark in rows]


def test_choose_never_takes_a_one_class_point_k_zero_aside() -> None:
    one = "sex = F: 100.0% of its 40 rows get the positive decision"
    for rule in ("actual", "predicted", "accuracy"):
        # k = 20 has the lowest F within the budget but predicts one class: k = 10 is chosen, and a warning says why
        curve = _curve((0, 0.30, True, None), (10, 0.20, True, None), (20, 0.10, True, one), (40, 0.05, False, None))
        best, warnings = selection.choose(curve, selection=rule)
        assert best["k"] == 10
        assert warnings == [f"k = 20, which the rule would otherwise choose, predicts one class on the validation split "
                            f"after the one-step update ({one}), so it was not chosen; k = 10 was"]
        # every point k > 0 predicts one class: the model is kept as it was (k = 0), even when k = 0 is one-class too
        curve = _curve((0, 0.30, True, one), (10, 0.20, True, one), (20, 0.10, True, one))
        best, [warning] = selection.choose(curve, selection=rule)
        assert best["k"] == 0
        assert warning.startswith("every grid point k > 0 (k = 10, 20) predicts one class on the validation split after "
                                  f"the one-step update ({one}, at k = 10), so the model is kept as it was (k = 0)")
        # nothing marked: the rule as it was, nothing to say
        curve = _curve((0, 0.30, True, None), (10, 0.20, True, None), (20, 0.10, False, None))
        assert selection.choose(curve, selection=rule) == (curve[1], [])


def test_a_grid_that_predicts_one_class_keeps_the_model_on_a_real_model(biased) -> None:
    """At threshold 0 every validation row gets the favourable decision at every k: every point is marked, k = 0 is
    kept and a warning says so; the grid is the given fractions of the training rows."""
    model, train, validation, gv, _ = biased
    result = _run(biased, mode="ij", fractions=(0.05, 0.1), threshold=0.0, group_column="word")
    assert [p["k"] for p in result.curve] == [0, 10, 20]
    expected = f"every one of the {len(validation)} audited rows gets the positive decision"
    assert [p["one_class"] for p in result.curve] == [expected] * 3
    assert result.chosen_k == 0 and not result.flagged.any()
    assert result.warnings == [f"every grid point k > 0 (k = 10, 20) predicts one class on the validation split after the "
                               f"one-step update ({expected}, at k = 10), so the model is kept as it was (k = 0)"]
    from fairprompt.results.fairij import FairIJRecord

    record = FairIJRecord.model_validate(json.loads(json.dumps(result.to_dict(), allow_nan=False)))
    assert record.warnings == result.warnings and [p.one_class for p in record.curve] == [expected] * 3
    # at the model's usual threshold nothing is marked here, and the choice is the rule's
    usual = _run(biased, mode="ij", fractions=(0.05, 0.1))
    assert [p["one_class"] for p in usual.curve] == [None] * 3 and usual.warnings == []
    best = min((p for p in usual.curve if p["k"] == 0 or p["feasible_actual"]), key=lambda p: (p["actual_F"], p["k"]))
    assert usual.chosen_k == best["k"]


def test_the_grid_of_fractions() -> None:
    # the default grid is the one FairIJ always had: GRID_FRACTIONS below max_fraction, and max_fraction itself
    assert selection.grid(1000, 1000, 0.1) == [0, 5, 10, 20, 30, 50, 75, 100]
    assert selection.grid(1000, 1000, 0.1, None) == selection.grid(1000, 1000, 0.1)
    # given shares: exactly those, each at least one row and at most the candidates
    assert selection.grid(1000, 1000, 0.5, (0.001, 0.05, 0.5)) == [0, 1, 50, 500]
    assert selection.grid(1000, 60, 0.5, (0.001, 0.05, 0.5)) == [0, 1, 50, 60]
    assert FairIJConfig(fractions=(0.01, 0.1)).fractions == (0.01, 0.1) and FairIJConfig().fractions is None
    for fractions, match in (((), "fairij.fractions is empty"), ((0.05, 0.01), r"not strictly increasing \(0\.05 then 0\.01\)"),
                             ((0.05, 0.05), "not strictly increasing"), ((0.0, 0.05), r"holds 0\.0; .* \(0, 1\]"),
                             ((0.05, 1.5), r"holds 1\.5"), ((0.05, 0.2), r"holds 0\.2, above max_fraction 0\.1")):
        with pytest.raises(FairpromptError, match=match):
            FairIJConfig(fractions=fractions)
