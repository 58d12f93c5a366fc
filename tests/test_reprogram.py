"""FairReprogram (fairprompt.mitigation.reprogram_method): the selector's projection, the surrogate, the
operating-point rule, and triggers trained on real frozen models.

Text: the embedded all-MiniLM-L6-v2 backbone with a 4-token task prompt and head (max_length 32, short
reviews, 64 training and 48 validation rows).  Images: the colored_digits fixture classifier at 16 x 16
pixels, trained for 2 epochs (it learns the tint shortcut: validation gap 1.0), with triggers tuned on the
validation split (``tuning_split="validation"``).  One epoch per trigger, one or two lambdas.
"""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
import torch
from fairlearn.metrics import demographic_parity_difference

from fairprompt.errors import FairpromptError
from fairprompt.mitigation import ReprogramConfig, load_trigger, reprogram
from fairprompt.mitigation.reprogram_method import repair, selection, training
from fairprompt.mitigation.reprogram_method.objective import surrogate_gap
from fairprompt.mitigation.reprogram_method.selection import choose, pareto_flags
from fairprompt.mitigation.reprogram_method.triggers import (
    check_image_trigger,
    check_text_trigger,
    project_simplex,
    word_candidates,
)
from fairprompt.models.frozen import state_sha256
from fairprompt.models.text import FrozenTextClassifier, TextRows
from fairprompt.prompts import (
    ConditionalPrompt,
    PixelBorder,
    PixelPatch,
    SoftPrompt,
    SoftPromptConfig,
    conditional_parameters,
    load_prompt,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one thread (tests/conftest.py)

IMAGE = 16
GOOD = ["good", "great", "fine", "nice"]
BAD = ["bad", "awful", "poor", "rude"]


# ------------------------------------------------------------------------------------------------ fixtures
def _reviews(n: int, seed: int) -> tuple[list[str], np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    texts, labels, groups = [], [], []
    for _ in range(n):
        group = ["beta", "alpha"][int(rng.integers(2))]
        positive = bool(rng.random() < 0.5)
        texts.append(f"{group} said it was {(GOOD if positive else BAD)[rng.integers(4)]}")
        labels.append(int(positive))
        groups.append(group)
    return texts, np.array(labels), np.array(groups)


@pytest.fixture(scope="module")
def text():
    model = FrozenTextClassifier.with_task_prompt(num_virtual_tokens=4, init="random", seed=0, max_length=32)
    texts, y, g = _reviews(64, 0)
    vtexts, vy, vg = _reviews(48, 1)
    return model, model.encode(texts, labels=y), model.encode(vtexts, labels=vy), g, vg


@pytest.fixture(scope="module")
def image():
    from fairprompt.datasets.colored_digits import generate
    from fairprompt.models.image import ImageRows
    from fairprompt.models.image_fixture import fixture_classifier

    data = generate(image_size=IMAGE)
    model, _ = fixture_classifier(data=data, epochs=2, cache=False)
    split, groups = data.frame["split"].to_numpy(), data.frame["group"].to_numpy().astype(str)
    train, validation = np.flatnonzero(split == "train"), np.flatnonzero(split == "validation")
    return (model, ImageRows(data.images[train], data.y[train]), ImageRows(data.images[validation], data.y[validation]),
            groups[train], groups[validation])


def _run_text(text, counterfactual_rows=None, validation_counterfactual_rows=None, **config):
    model, train, validation, g, vg = text
    return reprogram(model=model, train_rows=train, validation_rows=validation, train_groups=g, validation_groups=vg,
                     config=ReprogramConfig(**{"tokens": 2, "lambdas": (0.0, 1.0), "epochs": 1, "batch_size": 32, **config}),
                     counterfactual_rows=counterfactual_rows,
                     validation_counterfactual_rows=validation_counterfactual_rows)


def _run_image(image, **config):
    model, train, validation, g, vg = image
    settings = {"lambdas": (0.0, 4.0), "epochs": 1, "batch_size": 64, "tuning_split": "validation", "width": 2,
                "patch_size": 4, **config}
    return reprogram(model=model, train_rows=train, validation_rows=validation, train_groups=g, validation_groups=vg,
                     config=ReprogramConfig(**settings))


def _task_hashes(model: FrozenTextClassifier) -> list[str]:
    return [state_sha256({"p": p.detach()}) for p in model.task_parameters()]


# ----------------------------------------------------------------------------------------- simplex projection
def _reference_projection(v: np.ndarray) -> np.ndarray:
    """Bisection on theta with sum(max(v - theta, 0)) = 1 (independent of the sort-based algorithm)."""
    out = np.empty_like(v)
    for i, row in enumerate(v):
        lo, hi = row.min() - 1.0, row.max()
        for _ in range(200):
            mid = 0.5 * (lo + hi)
            if np.maximum(row - mid, 0.0).sum() > 1.0:
                lo = mid
            else:
                hi = mid
        out[i] = np.maximum(row - 0.5 * (lo + hi), 0.0)
    return out


def test_project_simplex_matches_a_reference_and_keeps_simplex_points() -> None:
    rng = np.random.default_rng(0)
    rows = np.concatenate([rng.normal(0, 1, (20, 7)), rng.normal(0, 10, (5, 7)), rng.uniform(-5, -1, (3, 7)),
                           np.zeros((1, 7)), np.full((1, 7), 3.0), np.eye(7)[:1] * 4.0])
    projected = project_simplex(torch.from_numpy(rows)).numpy()
    assert (projected >= 0).all()
    np.testing.assert_allclose(projected.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(projected, _reference_projection(rows), atol=1e-9)
    np.testing.assert_allclose(projected[-3], np.full(7, 1 / 7), atol=1e-12)  # equal entries: the centre
    np.testing.assert_allclose(projected[-1], np.eye(7)[0], atol=1e-12)
    # no simplex point is closer to the input than its projection
    others = rng.dirichlet(np.ones(7), size=(50,))
    for row, p in zip(rows, projected):
        assert np.linalg.norm(row - p) <= np.linalg.norm(row - others, axis=1).min() + 1e-12
    # points already on the simplex (vertices, the centre, random interior and face points) are left alone
    on = np.concatenate([np.eye(7), np.full((1, 7), 1 / 7), rng.dirichlet(np.ones(7), size=10),
                         np.array([[0.5, 0.5, 0, 0, 0, 0, 0]])])
    np.testing.assert_allclose(project_simplex(torch.from_numpy(on)).numpy(), on, atol=1e-12)


# ------------------------------------------------------------------------------------------------ surrogate
def test_surrogate_gap_by_hand_skips_absent_groups_and_has_gradients() -> None:
    p = torch.tensor([0.9, 0.7, 0.2, 0.4, 0.3, 0.6], dtype=torch.float64, requires_grad=True)
    codes = torch.tensor([0, 0, 1, 1, 1, 3])       # group 2 has no rows in the batch
    labels = torch.tensor([1, 0, 1, 0, 0, 1])
    dp = surrogate_gap(p, labels=labels, codes=codes, n_groups=4, measure="demographic_parity")
    assert float(dp.detach()) == pytest.approx(0.8 - 0.3, abs=1e-12)  # group means 0.8, 0.3, 0.6 (groups 0, 1, 3)
    (grad,) = torch.autograd.grad(dp, p)
    np.testing.assert_allclose(grad.numpy(), [0.5, 0.5, -1 / 3, -1 / 3, -1 / 3, 0.0], atol=1e-12)

    # equalized odds: label 1 -> groups 0 (0.9), 1 (0.2), 3 (0.6); label 0 -> groups 0 (0.7), 1 (0.35)
    eo = surrogate_gap(p, labels=labels, codes=codes, n_groups=4, measure="equalized_odds")
    assert float(eo.detach()) == pytest.approx((0.9 - 0.2) + (0.7 - 0.35), abs=1e-12)
    (grad,) = torch.autograd.grad(eo, p)
    np.testing.assert_allclose(grad.numpy(), [1, 1, -1, -0.5, -0.5, 0], atol=1e-12)

    # a label with a single group present adds nothing
    eo_one = surrogate_gap(p, labels=labels, codes=torch.tensor([0, 0, 1, 0, 0, 1]), n_groups=2, measure="equalized_odds")
    assert float(eo_one.detach()) == pytest.approx(0.9 - (0.2 + 0.6) / 2, abs=1e-12)
    # one group in the batch: zero, still differentiable (zero gradient)
    for measure in ("demographic_parity", "equalized_odds"):
        zero = surrogate_gap(p, labels=labels, codes=torch.zeros(6, dtype=torch.long), n_groups=2, measure=measure)
        assert float(zero.detach()) == 0.0
        (grad,) = torch.autograd.grad(zero, p)
        assert torch.equal(grad, torch.zeros_like(p))


# ---------------------------------------------------------------------------------------- pareto and choose
def _points(*rows: tuple[float, float, float]) -> list[dict]:
    return [{"lambda": lam, "accuracy": acc, "gap": g} for lam, acc, g in rows]


def test_pareto_flags() -> None:
    points = _points((0.0, 0.90, 0.10), (1.0, 0.85, 0.05), (2.0, 0.80, 0.10), (4.0, 0.90, 0.10), (8.0, 0.70, 0.01),
                     (16.0, 0.84, 0.05))
    # (0.80, 0.10) is beaten by (0.90, 0.10); (0.84, 0.05) by (0.85, 0.05); equal points do not beat each other
    assert pareto_flags(points) == [True, True, False, True, True, False]
    assert pareto_flags(points[:1]) == [True]


def test_choose_follows_the_rule() -> None:
    # lambda 0 is the most accurate and the fairest, but it is the control: never chosen when a lambda > 0 exists
    points = _points((0.0, 0.95, 0.00), (1.0, 0.89, 0.20), (4.0, 0.88, 0.10), (16.0, 0.80, 0.01))
    assert choose(points, base_accuracy=0.90, max_accuracy_drop=0.02) == (2, True)   # 0.88 is within the budget
    assert choose(points, base_accuracy=0.90, max_accuracy_drop=0.10) == (3, True)   # a wider budget admits 16
    assert choose(points, base_accuracy=0.90, max_accuracy_drop=0.0) == (0, False)   # none qualifies: the most accurate
    # ties on the gap go to the smaller lambda, wherever it is in the list
    tied = _points((8.0, 0.90, 0.05), (2.0, 0.90, 0.05), (0.0, 0.90, 0.0), (4.0, 0.91, 0.07))
    assert choose(tied, base_accuracy=0.9, max_accuracy_drop=0.02) == (1, True)
    # the fallback is the most accurate point of the whole grid (the control here: no fairness trigger deployed)
    low = _points((0.0, 0.99, 0.3), (4.0, 0.5, 0.1), (1.0, 0.5, 0.2), (2.0, 0.4, 0.0))
    assert choose(low, base_accuracy=0.999, max_accuracy_drop=0.0) == (0, False)
    # fallback ties on accuracy go to the smaller lambda
    tie = _points((0.0, 0.5, 0.3), (4.0, 0.6, 0.1), (1.0, 0.6, 0.2))
    assert choose(tie, base_accuracy=0.99, max_accuracy_drop=0.02) == (2, False)
    # a grid holding only the control: it is the one there is
    assert choose(_points((0.0, 0.5, 0.2)), base_accuracy=0.9, max_accuracy_drop=0.02) == (0, False)
    assert choose(_points((0.0, 0.9, 0.2)), base_accuracy=0.9, max_accuracy_drop=0.02) == (0, True)


def _marked(*rows: tuple[float, float, float, str | None]) -> list[dict]:
    return [{"lambda": lam, "accuracy": acc, "gap": g, "one_class": mark} for lam, acc, g, mark in rows]


def test_choose_never_takes_a_one_class_point() -> None:
    one = "sex = F: 100.0% of its 40 rows get the positive decision"
    # lambda 16 is the fairest within the budget, but predicts one class: the next fairest is taken
    points = _marked((0.0, 0.90, 0.20, None), (4.0, 0.89, 0.10, None), (16.0, 0.89, 0.01, one))
    assert choose(points, base_accuracy=0.90, max_accuracy_drop=0.02) == (1, True)
    assert selection.one_class_warnings(points, index=1, base_accuracy=0.90, max_accuracy_drop=0.02) == [
        f"lambda 16, which the rule would otherwise choose, predicts one class on the selection rows ({one}), so it "
        "was not chosen; lambda 4 was"]
    # every lambda > 0 within the budget is one-class: the most accurate point that is not (the control here)
    points = _marked((0.0, 0.85, 0.20, None), (4.0, 0.89, 0.10, one), (16.0, 0.80, 0.01, None))
    assert choose(points, base_accuracy=0.90, max_accuracy_drop=0.02) == (0, False)
    # the fallback itself skips a one-class point, even the most accurate one
    points = _marked((0.0, 0.95, 0.20, one), (4.0, 0.70, 0.10, None), (16.0, 0.60, 0.01, None))
    assert choose(points, base_accuracy=0.90, max_accuracy_drop=0.02) == (1, False)
    # every point is one-class: none is usable, the rule's choice without the guard is kept and the rule is not met
    points = _marked((0.0, 0.90, 0.20, one), (4.0, 0.89, 0.10, one), (16.0, 0.80, 0.01, one))
    assert choose(points, base_accuracy=0.90, max_accuracy_drop=0.02) == (1, False)
    [warning] = selection.one_class_warnings(points, index=1, base_accuracy=0.90, max_accuracy_drop=0.02)
    assert warning.startswith("every trigger of the grid (lambda 0, 4, 16) predicts one class on the selection rows, "
                              "so none is a usable repair and the rule is not met; lambda 4")
    # no mark: the rule as it always was, and nothing to say
    points = _marked((0.0, 0.90, 0.20, None), (4.0, 0.89, 0.10, None))
    assert choose(points, base_accuracy=0.90, max_accuracy_drop=0.02) == (1, True)
    assert selection.one_class_warnings(points, index=1, base_accuracy=0.90, max_accuracy_drop=0.02) == []


def test_a_trigger_that_decides_one_class_is_marked_on_a_real_model(image) -> None:
    """The fixture learned the tint shortcut (validation gap 1.0: one tint always favourable, the other never) and a
    trigger that barely trains keeps it: every point and the untriggered model are marked, named by the column, the
    rule is not met and a warning says no trigger of the grid is usable."""
    model, train, validation, g, vg = image
    result = reprogram(model=model, train_rows=train, validation_rows=validation, train_groups=g, validation_groups=vg,
                       group_column="tint",
                       config=ReprogramConfig(lambdas=(0.0, 4.0), epochs=1, batch_size=64, tuning_split="validation",
                                              width=2, lr=1e-6))
    assert result.before["gap"] == 1.0
    assert "tint = green: 100.0%" in result.before["one_class"] and "tint = red: 100.0%" in result.before["one_class"]
    assert all(p["one_class"].startswith("tint = ") for p in result.points)
    assert not result.rule_met and sum(p["chosen"] for p in result.points) == 1
    assert any(w.startswith("every trigger of the grid (lambda 0, 4) predicts one class") for w in result.warnings)
    from fairprompt.results.reprogram import ReprogramRecord

    record = ReprogramRecord.model_validate(json.loads(json.dumps(result.to_dict(), allow_nan=False)))
    assert [p.one_class for p in record.points] == [p["one_class"] for p in result.points]
    assert record.before is not None and record.before.one_class == result.before["one_class"]


# --------------------------------------------------------------------------------------------- image triggers
@pytest.mark.parametrize("kind", ["border", "patch"])
def test_image_trigger_on_colored_digits(image, kind: str, tmp_path) -> None:
    model, _, validation, _, vg = image
    backbone = state_sha256(model.backbone)
    result = _run_image(image, trigger=kind)
    assert result.trigger_kind == kind and result.modality == "image" and isinstance(result.trigger, (PixelBorder, PixelPatch))
    # the input model is untouched: same backbone bit for bit, no new prompts; the trigger rides on a new wrapper
    assert state_sha256(model.backbone) == backbone and len(model.prompts) == 0
    triggered = result.triggered_model
    assert triggered is not model and triggered.backbone is model.backbone and list(triggered.prompts) == [result.trigger]
    assert not any(p.requires_grad for p in triggered.parameters())
    # parameter counts
    s, w, k = IMAGE, 2, 4
    expected = 3 * (2 * w * s + 2 * (s - 2 * w) * w) if kind == "border" else 3 * k * k
    assert result.parameters["trigger_trainable"] == expected == sum(p.numel() for p in result.trigger.parameters())
    assert result.parameters["backbone"] == sum(p.numel() for p in model.backbone.parameters())
    # the rendered trigger, 4x nearest-neighbour, as a PNG data URI
    uri = result.trigger_description["image_png"]
    assert uri.startswith("data:image/png;base64,")
    from PIL import Image

    picture = np.asarray(Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))).convert("RGB"))
    np.testing.assert_array_equal(picture, result.trigger.render().repeat(4, axis=0).repeat(4, axis=1))
    # the trigger trained (zeros init: a grey 0.5 frame or patch before training)
    assert any(p.abs().max() > 0 for p in result.trigger.parameters())
    # tuning on halves of the validation split, stratified by (group, label); the test split is not involved
    fit, select = selection.stratified_half(vg, validation.labels, 0)
    assert not set(fit) & set(select) and len(fit) + len(select) == len(validation)
    assert result.tuning["fit_rows"] == len(fit) and result.tuning["selection_rows"] == len(select)
    for group in np.unique(vg):
        for label in (0, 1):
            a = int(((vg[fit] == group) & (validation.labels[fit] == label)).sum())
            b = int(((vg[select] == group) & (validation.labels[select] == label)).sum())
            assert abs(a - b) <= 1
    # the rule, and the chosen point's metrics reproduce on the selection half with the triggered model
    points = result.points
    assert [p["lambda"] for p in points] == [0.0, 4.0] and sum(p["chosen"] for p in points) == 1
    assert result.chosen_lambda == 4.0 and result.chosen["lambda"] == 4.0
    assert choose(points, base_accuracy=result.before["accuracy"], max_accuracy_drop=0.02)[1] == result.rule_met
    assert [p["pareto"] for p in points] == pareto_flags(points)
    assert result.before["gap"] > 0.5  # the fixture learned the tint shortcut
    p1 = triggered.predict_proba(images=validation.images[select])[:, 1]
    pred = (p1 >= 0.5).astype(int)
    y = validation.labels[select]
    assert result.chosen["accuracy"] == pytest.approx(float((pred == y).mean()))
    assert result.chosen["gap"] == pytest.approx(demographic_parity_difference(y, pred, sensitive_features=vg[select]))
    # save + load_trigger reproduce the triggered model exactly
    paths = result.save(tmp_path)
    loaded = load_trigger(model, paths["trigger"])
    assert len(model.prompts) == 0 and loaded.backbone is model.backbone
    np.testing.assert_array_equal(loaded.predict_proba(images=validation.images),
                                  triggered.predict_proba(images=validation.images))
    record = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert record["trigger"]["image_png"] == uri and record["artifacts"]["trigger"] == paths["trigger"]


def test_image_triggers_ship_and_load_as_trained(image, tmp_path) -> None:
    """A shipped repair artifact (fairprompt/mitigation/reprogram_method/shipped.py) of pixel triggers: every lambda's
    trigger and the record's facts come back exactly, on the same frozen model."""
    from fairprompt.mitigation.reprogram_method.shipped import load_result, save_result

    model, _, validation, _, _ = image
    result = _run_image(image, trigger="patch")
    save_result(result, tmp_path, model=model)
    assert not [p for p in tmp_path.iterdir() if p.suffix not in (".json", ".safetensors")]
    loaded = load_result(tmp_path, model=model)
    assert len(model.prompts) == 0 and loaded.triggered_model.backbone is model.backbone
    assert json.dumps(loaded.to_dict(), allow_nan=False) == json.dumps(result.to_dict(), allow_nan=False)
    assert len(loaded.triggered_models) == len(result.triggered_models) == 2
    for ours, theirs in zip(loaded.triggered_models, result.triggered_models, strict=True):
        np.testing.assert_array_equal(ours.predict_proba(images=validation.images),
                                      theirs.predict_proba(images=validation.images))
    assert loaded.triggered_model is loaded.triggered_models[[p["chosen"] for p in loaded.points].index(True)]


def test_equal_lambdas_train_equal_triggers(image) -> None:
    """Each lambda starts from the same seed, initial value and batch order: a lambda trained after another in a
    grid is the lambda trained alone (a grid lists each lambda once, so the same lambda is compared across grids)."""
    grid = _run_image(image, lambdas=(0.0, 1.0), batch_size=32).points[1]
    alone = _run_image(image, lambdas=(1.0,), batch_size=32).points[0]
    assert grid["history"][0]["task_loss"] == alone["history"][0]["task_loss"]
    assert grid["history"][0]["fairness_loss"] == alone["history"][0]["fairness_loss"]
    assert (grid["accuracy"], grid["gap"]) == (alone["accuracy"], alone["gap"])


# ---------------------------------------------------------------------------------------------- text triggers
def test_soft_trigger_trains_only_the_trigger(text, tmp_path) -> None:
    model, _, validation, _, _ = text
    backbone, task = state_sha256(model.encoder), _task_hashes(model)
    result = _run_text(text)
    triggered = result.triggered_model
    assert result.trigger_kind == "soft" and isinstance(result.trigger, SoftPrompt)
    # backbone, task prompt and head: bit for bit, in the input model and in the triggered copy
    assert state_sha256(model.encoder) == backbone and _task_hashes(model) == task and len(model.prompts) == 0
    assert triggered is not model and triggered.encoder is model.encoder
    assert state_sha256(triggered.encoder) == backbone and _task_hashes(triggered) == task
    assert list(triggered.prompts) == [result.trigger] and not any(p.requires_grad for p in triggered.parameters())
    # only the trigger moved: it starts from seeded vocabulary rows
    config = result.trigger.config
    assert config.position == "append" and config.n_tokens == 2 and config.dim == 384
    initial = SoftPrompt.initialise(SoftPromptConfig(n_tokens=2, dim=384, position="append", init="vocab", seed=0),
                                    embeddings=model.base.get_input_embeddings())
    assert not torch.equal(initial.weight, result.trigger.weight)
    assert torch.isfinite(result.trigger.weight).all()
    # the trainable count
    counts = result.parameters
    assert counts["trigger_trainable"] == 2 * 384
    assert counts["trainable_share_of_model"] < 0.001
    assert counts["backbone"] == sum(p.numel() for p in model.encoder.parameters())
    assert len(result.trigger_description["nearest_words"]) == 2
    # the trigger changes the outputs; save + load_trigger reproduces them exactly
    probabilities = triggered.predict_proba(validation)
    assert not np.array_equal(probabilities, model.predict_proba(validation))
    loaded = load_trigger(model, result.save(tmp_path)["trigger"])
    assert len(model.prompts) == 0 and loaded.encoder is model.encoder
    np.testing.assert_array_equal(loaded.predict_proba(validation), probabilities)
    assert torch.equal(load_prompt(tmp_path / "trigger").weight, result.trigger.weight)
    json.dumps(result.to_dict(), allow_nan=False)


def test_conditional_trigger_writes_tokens_per_input_and_trains_only_itself(text, tmp_path) -> None:
    model, _, validation, _, _ = text
    backbone, task = state_sha256(model.encoder), _task_hashes(model)
    result = _run_text(text, trigger="conditional", bottleneck=4, anchor=10.0)
    triggered, trigger = result.triggered_model, result.trigger
    assert result.trigger_kind == "conditional" and isinstance(trigger, ConditionalPrompt)
    assert state_sha256(model.encoder) == backbone and _task_hashes(model) == task and len(model.prompts) == 0
    assert _task_hashes(triggered) == task and list(triggered.prompts) == [trigger]
    assert not any(p.requires_grad for p in triggered.parameters())
    # its generator trained (W_up starts at zero), so two inputs get different tokens
    assert bool(trigger.up.abs().sum() > 0)
    batch = validation.collate([0, 1])
    embeds = triggered._word_embeddings(batch["input_ids"])
    tokens = trigger.tokens(embeds, batch["attention_mask"])
    assert not torch.allclose(tokens[0], tokens[1])
    # the counted parameters, within the budget, and the description
    count = conditional_parameters(n_tokens=2, dim=384, bottleneck=4)
    assert result.parameters["trigger_trainable"] == count == result.trigger_description["parameters"]
    assert result.config["anchor"] == 10.0 and result.trigger_description["bottleneck"] == 4
    # save + load_trigger reproduce the decisions exactly
    probabilities = triggered.predict_proba(validation)
    loaded = load_trigger(model, result.save(tmp_path)["trigger"])
    np.testing.assert_array_equal(loaded.predict_proba(validation), probabilities)
    json.dumps(result.to_dict(), allow_nan=False)


def test_the_rate_anchor_holds_the_mean_score(text) -> None:
    """With a large anchor, the triggered model's mean favourable probability on the tuning rows stays near the
    untriggered model's; without it, the same large steps move it further."""
    model, train, _, _, _ = text
    base = model.predict_proba(train)[:, 1].mean()
    drift = {}
    for anchor in (0.0, 1000.0):
        result = _run_text(text, lambdas=(30.0,), lr=0.5, epochs=2, anchor=anchor)
        drift[anchor] = abs(result.triggered_model.predict_proba(train)[:, 1].mean() - base)
    assert drift[1000.0] < drift[0.0], drift
    with pytest.raises(ValueError, match="reference"):
        training.train_trigger(None, rows=train, codes=np.zeros(len(train), dtype=int), n_groups=2, lam=1.0,
                               config=ReprogramConfig(anchor=1.0), kind="soft", progress=None, label="x")


def test_word_candidates_are_whole_words(text) -> None:
    tokenizer = text[0].tokenizer
    ids = word_candidates(tokenizer)
    tokens = tokenizer.convert_ids_to_tokens(ids.tolist())
    assert len(ids) > 10_000 and (np.diff(ids) > 0).all()
    assert all(t.isascii() and t.isalpha() and not t.startswith("##") for t in tokens)
    assert not set(ids.tolist()) & set(tokenizer.all_special_ids)
    vocab = tokenizer.get_vocab()
    assert vocab["good"] in ids and vocab["##s"] not in ids and vocab["[unused0]"] not in ids and vocab["[CLS]"] not in ids


def test_hard_trigger_is_real_words(text, tmp_path) -> None:
    model, _, validation, _, _ = text
    backbone, task = state_sha256(model.encoder), _task_hashes(model)
    result = _run_text(text, trigger="hard")
    description = result.trigger_description
    ids, words = description["token_ids"], description["words"]
    assert len(ids) == len(words) == 2
    assert set(ids) <= set(word_candidates(model.tokenizer).tolist())
    assert words == model.tokenizer.convert_ids_to_tokens(ids) and model.tokenizer.convert_tokens_to_ids(words) == ids
    assert all(w.isalpha() and not w.startswith("##") for w in words) and description["text"] == " ".join(words)
    # the saved form is a soft prompt holding exactly those embedding rows, and the deployed model carries it
    embeddings = model.base.get_input_embeddings().weight.detach()
    assert isinstance(result.trigger, SoftPrompt) and torch.equal(result.trigger.weight, embeddings[ids])
    triggered = result.triggered_model
    assert list(triggered.prompts) == [result.trigger]
    assert state_sha256(model.encoder) == backbone and _task_hashes(model) == task and _task_hashes(triggered) == task
    # the triggered model is the input model reading the words themselves, before the closing [SEP]
    with_words = TextRows([row[:-1] + list(ids) + row[-1:] for row in validation.input_ids], validation.labels,
                          validation.weights, validation.pad_id)
    probabilities = triggered.predict_proba(validation)
    np.testing.assert_array_equal(model.predict_proba(with_words), probabilities)
    # save + load_trigger: the same words, the same probabilities
    loaded = load_trigger(model, result.save(tmp_path)["trigger"])
    assert torch.equal(loaded.prompts[-1].weight, embeddings[ids])
    np.testing.assert_array_equal(loaded.predict_proba(validation), probabilities)
    assert result.parameters["deployed_trigger_tokens"] == 2
    json.dumps(result.to_dict(), allow_nan=False)


# ------------------------------------------------------------------------------------------------- bad input
def test_bad_input_is_refused(text, image) -> None:
    tmodel, ttrain, tvalidation, tg, tvg = text
    imodel, itrain, ivalidation, ig, ivg = image
    tbase = {"model": tmodel, "train_rows": ttrain, "validation_rows": tvalidation, "train_groups": tg,
             "validation_groups": tvg}
    ibase = {"model": imodel, "train_rows": itrain, "validation_rows": ivalidation, "train_groups": ig,
             "validation_groups": ivg}

    def refused(match: str, base: dict, **changes) -> None:
        with pytest.raises(FairpromptError, match=match):
            reprogram(**{**base, **changes})

    # a trigger longer than the backbone's positions (512 = 4 task tokens + 32 input tokens + 476 trigger tokens)
    with pytest.raises(FairpromptError, match=r"reprogram\.tokens is 1000.*at most 476"):
        check_text_trigger(tmodel, tokens=1000)
    check_text_trigger(tmodel, tokens=476)
    with pytest.raises(FairpromptError, match=r"reprogram\.tokens is 477"):
        check_text_trigger(tmodel, tokens=477)
    refused(r"reprogram\.tokens", tbase, config=ReprogramConfig(tokens=1000))
    # a border as wide as half the image, or a patch larger than it
    with pytest.raises(FairpromptError, match=r"reprogram\.width is 8"):
        check_image_trigger(kind="border", image_size=16, width=8, patch_size=4)
    check_image_trigger(kind="border", image_size=16, width=7, patch_size=4)
    refused(r"reprogram\.width", ibase, config=ReprogramConfig(trigger="border", width=8))
    refused(r"reprogram\.patch_size", ibase, config=ReprogramConfig(trigger="patch", patch_size=17))
    # lambda grid
    for lambdas in [(), (-1.0,), (0.0, float("nan")), (1.0, float("inf"))]:
        with pytest.raises(FairpromptError, match=r"reprogram\.lambdas"):
            ReprogramConfig(lambdas=lambdas)
    for lambdas in [(1.0, 1.0), (0.0, 4.0, 1.0)]:
        with pytest.raises(FairpromptError, match=r"reprogram\.lambdas is not strictly increasing \((1|4) then 1\)"):
            ReprogramConfig(lambdas=lambdas)
    # projection without an adversary
    with pytest.raises(FairpromptError, match=r"reprogram\.projection"):
        ReprogramConfig(projection=True)
    # a conditional trigger's generator over the parameter budget; a rate anchor without the surrogate
    refused(r"trains 112,944 numbers, above the parameter budget of 22,7\d\d \(0\.001 of the model's parameters\); "
            r"use a smaller reprogram\.bottleneck", tbase, config=ReprogramConfig(trigger="conditional", bottleneck=48))
    refused(r"above the parameter budget of 2,2\d\d", tbase,
            config=ReprogramConfig(trigger="conditional", tokens=2, bottleneck=4, parameter_budget=0.0001))
    for bad, match in (({"anchor": -1.0}, r"reprogram\.anchor is -1"), ({"parameter_budget": 0.0}, "parameter_budget"),
                       ({"parameter_budget": 2.0}, "parameter_budget"), ({"bottleneck": 0}, "bottleneck"),
                       ({"objective": "adversary", "anchor": 1.0}, "anchor needs objective: surrogate")):
        with pytest.raises(FairpromptError, match=match):
            ReprogramConfig(**bad)
    # a trigger for the other modality
    refused(r"reprogram\.trigger 'border'", tbase, config=ReprogramConfig(trigger="border"))
    refused(r"reprogram\.trigger 'soft'", ibase, config=ReprogramConfig(trigger="soft"))
    with pytest.raises(FairpromptError, match=r"reprogram\.trigger"):
        ReprogramConfig(trigger="frame")
    # groups the tuning rows lack: in the selection rows, or required (the test split's)
    moved = ivg.copy()
    moved[:5] = "blue"
    refused(r"group 'blue' \(in the selection rows\)", ibase, validation_groups=moved)
    refused(r"group 'blue' \(in the test split\)", ibase, required_groups=["red", "blue"])
    refused(r"group 'gamma' \(in the test split\)", tbase, required_groups=["gamma"])
    refused("single group", ibase, train_groups=np.full(len(itrain), "red"), validation_groups=np.full(len(ivalidation), "red"))
    refused("one group per row", ibase, validation_groups=ivg[:-1])
    refused("group of some rows", tbase, train_groups=[None] + list(tg[1:]))


# ------------------------------------------------------------------------------------------------ divergence
class _Stop(Exception):
    pass


def test_a_loss_that_is_not_finite_stops_training_at_the_last_good_trigger(image, monkeypatch) -> None:
    original = training._task_loss
    settings = {"trigger": "border", "lambdas": (1.0,), "batch_size": 32}

    # the trigger after two steps: stop the run at the third loss and read the trigger being trained
    built = []
    build = repair.build
    monkeypatch.setattr(repair, "build", lambda *a, **k: built.append(build(*a, **k)) or built[-1])
    calls = {"n": 0}

    def stop(logits, labels):
        calls["n"] += 1
        if calls["n"] == 3:
            raise _Stop
        return original(logits, labels)

    monkeypatch.setattr(training, "_task_loss", stop)
    with pytest.raises(_Stop):
        _run_image(image, **settings)
    after_two = [p.detach().clone() for p in built[-1].trigger.parameters()]
    assert any(p.abs().max() > 0 for p in after_two)  # it did train (zeros init)

    # now a loss that is NaN from its third call on
    calls["n"] = 0

    def nan_from_third(logits, labels):
        calls["n"] += 1
        loss = original(logits, labels)
        return loss * float("nan") if calls["n"] >= 3 else loss

    monkeypatch.setattr(training, "_task_loss", nan_from_third)
    result = _run_image(image, **settings)
    assert calls["n"] == 3  # training stopped at the bad step
    (point,) = result.points
    assert point["diverged"] and "not finite" in point["diverged"] and "step 3" in point["diverged"]
    assert any("not finite" in w for w in result.warnings)
    assert point["history"] == [] and point["epoch_seconds"] is None
    saved = list(result.trigger.parameters())
    assert all(torch.isfinite(p).all() for p in saved)
    assert all(torch.equal(a, b) for a, b in zip(saved, after_two))
    assert np.isfinite([point["accuracy"], point["gap"]]).all()
    json.dumps(result.to_dict(), allow_nan=False)


# ------------------------------------------------------------------------------------------------- adversary
@pytest.mark.parametrize(("projection", "measure"), [(False, "demographic_parity"), (True, "equalized_odds")])
def test_adversary_objective(image, projection: bool, measure: str) -> None:
    model = image[0]
    backbone = state_sha256(model.backbone)
    result = _run_image(image, objective="adversary", projection=projection, measure=measure, lambdas=(0.0, 1.0),
                        epochs=2)
    assert not any("not finite" in w for w in result.warnings)
    for point in result.points:
        assert not point["diverged"] and len(point["history"]) == 2
        for epoch in point["history"]:
            assert np.isfinite([epoch["task_loss"], epoch["fairness_loss"]]).all()
            assert epoch["fairness_loss"] > 0  # the adversary's cross-entropy
        assert point["gap"] == point[f"{measure}_difference"]
    assert any(p.abs().max() > 0 for p in result.trigger.parameters())
    assert state_sha256(model.backbone) == backbone and result.config["projection"] is projection


def test_subsample_is_stratified_and_keeps_every_group_and_label() -> None:
    from fairprompt.mitigation.reprogram_method.selection import subsample

    rng = np.random.default_rng(0)
    groups = np.array(["a"] * 900 + ["b"] * 90 + ["c"] * 10)
    labels = rng.integers(0, 2, groups.size)
    labels[-10:] = [0, 1] * 5  # the small group has both labels, at the very end of the rows
    picked = subsample(groups, labels, 100, seed=3)
    assert picked.size == 100 and np.unique(picked).size == 100 and (np.diff(picked) > 0).all()
    kept = {(g, int(y)) for g, y in zip(groups[picked], labels[picked])}
    assert kept == {(g, int(y)) for g, y in zip(groups, labels)}, "every (group, label) keeps a row"
    assert 80 <= (groups[picked] == "a").sum() <= 92  # about its 90% share
    assert np.array_equal(picked, subsample(groups, labels, 100, seed=3))  # seeded
    assert np.array_equal(subsample(groups, labels, 5000, seed=0), np.arange(groups.size))


def test_temperature_one_is_the_favourable_probability_and_smaller_sharpens() -> None:
    from fairprompt.spec import ReprogramSpec

    logits = torch.tensor([[0.3, 1.5], [2.0, -1.0], [0.0, 0.1]])
    margin = logits[:, 1] - logits[:, 0]
    assert torch.allclose(torch.sigmoid(margin / 1.0), torch.softmax(logits, dim=1)[:, 1])
    sharp = torch.sigmoid(margin / 0.1)
    assert sharp[0] > 0.99 and sharp[1] < 0.01  # near the 0/1 decision away from the threshold
    with pytest.raises(FairpromptError, match="temperature"):
        ReprogramConfig(temperature=0.0)
    # the spec's settings reach the config unchanged
    config = ReprogramSpec(temperature=0.5, lambdas=[0, 2], trigger="patch", max_rows=50).config()
    assert (config.temperature, config.lambdas, config.trigger, config.max_rows) == (0.5, (0, 2), "patch", 50)


def test_the_counterfactual_term_makes_swapped_rows_score_alike(text, tmp_path) -> None:
    """Trained with a large counterfactual weight, a trigger scores each row and its identity-swapped copy closer
    together than the same trigger without it; the swapped rows must come with the config, row for row."""
    from fairprompt.swaps import SwapTerms

    model, train, _, g, _ = text
    texts, y, _ = _reviews(64, 0)
    terms = tmp_path / "terms.yaml"
    terms.write_text("alpha: [alpha]\nbeta: [beta]\n")
    swapped_texts, changed = SwapTerms.load(str(terms)).swap(texts, seed=0)
    assert changed.all() and all(a.split()[0] != b.split()[0] for a, b in zip(texts, swapped_texts, strict=True))
    swapped = model.encode(swapped_texts, labels=y)
    spread = {}
    for weight in (0.0, 1000.0):
        config = {"counterfactual": weight, "swap_terms": str(terms)} if weight else {}
        result = _run_text(text, lambdas=(3.0,), lr=0.5, epochs=2, counterfactual_rows=swapped, **config)
        triggered = result.triggered_model
        spread[weight] = float(np.abs(triggered.predict_proba(train)[:, 1] - triggered.predict_proba(swapped)[:, 1]).mean())
    assert spread[1000.0] < spread[0.0], spread
    with pytest.raises(FairpromptError, match="counterfactual_rows"):
        _run_text(text, counterfactual=1.0, swap_terms=str(terms))
    with pytest.raises(ValueError, match="swapped rows"):
        training.train_trigger(None, rows=train, codes=np.zeros(len(train), dtype=int), n_groups=2, lam=1.0,
                               config=ReprogramConfig(counterfactual=1.0, swap_terms="identity_toxicity"), kind="soft",
                               progress=None, label="x")


def test_counterfactual_options_are_checked() -> None:
    with pytest.raises(FairpromptError, match="counterfactual needs swap_terms"):
        ReprogramConfig(counterfactual=1.0)
    for changes in ({"objective": "adversary"}, {"tuning_split": "validation"}):
        with pytest.raises(FairpromptError, match="counterfactual needs objective: surrogate and tuning_split: train"):
            ReprogramConfig(counterfactual=1.0, swap_terms="identity_toxicity", **changes)
    with pytest.raises(FairpromptError, match=r"reprogram\.counterfactual is -1.*finite number >= 0"):
        ReprogramConfig(counterfactual=-1.0, swap_terms="identity_toxicity")
    assert ReprogramConfig(counterfactual=0.0).swap_terms is None


def test_swap_flips_selection_minimises_the_flip_rate_within_the_budget(text, tmp_path) -> None:
    """selection: swap_flips records, for the untriggered model and every trigger, the share of selection rows whose
    decision flips when their identity phrase is swapped (checked against the triggered models' own decisions), and
    chooses by the same rule with that share in place of the gap."""
    from fairprompt.mitigation.reprogram_method.selection import RULE_SWAP_FLIPS, choose
    from fairprompt.swaps import SwapTerms

    model, _, validation, _, _ = text
    vtexts, vy, _ = _reviews(48, 1)
    terms = tmp_path / "terms.yaml"
    terms.write_text("alpha: [alpha]\nbeta: [beta]\n")
    swapped_texts, changed = SwapTerms.load(str(terms)).swap(vtexts, seed=0)
    assert changed.all()
    swapped = model.encode(swapped_texts, labels=vy)
    result = _run_text(text, lambdas=(0.0, 1.0, 4.0), selection="swap_flips", swap_terms=str(terms),
                       max_accuracy_drop=1.0, validation_counterfactual_rows=swapped)
    assert result.rule == RULE_SWAP_FLIPS and "identity phrases are swapped" in result.rule
    for point, triggered in zip([result.before, *result.points], [model, *result.triggered_models], strict=True):
        flips = (triggered.predict_proba(validation)[:, 1] >= 0.5) != (triggered.predict_proba(swapped)[:, 1] >= 0.5)
        assert point["swap_flip_rate"] == pytest.approx(float(flips.mean()))
    index, met = choose(result.points, base_accuracy=result.before["accuracy"], max_accuracy_drop=1.0,
                        key="swap_flip_rate")
    assert met and result.chosen is result.points[index] and result.chosen["lambda"] > 0
    rates = [p["swap_flip_rate"] for p in result.points if p["lambda"] > 0 and not p["one_class"]]
    assert result.chosen["swap_flip_rate"] == min(rates)
    assert result.to_dict()["config"]["selection"] == "swap_flips"
    assert max(rates) > 0  # the triggers move decisions that the swaps then flip: the check above is not vacuous
    # without the swapped validation rows, or with swaps that change nothing, it refuses
    with pytest.raises(FairpromptError, match="swap_flips needs the validation rows with their identity phrases"):
        _run_text(text, selection="swap_flips", swap_terms=str(terms))
    with pytest.raises(FairpromptError, match="swap_flips found no identity phrase of swap_terms"):
        _run_text(text, selection="swap_flips", swap_terms=str(terms), validation_counterfactual_rows=validation)


def test_the_rule_orders_an_undefined_value_last() -> None:
    from fairprompt.mitigation.reprogram_method.selection import choose

    points = [{"lambda": 0.0, "accuracy": 0.9, "gap": 0.3, "swap_flip_rate": 0.2},
              {"lambda": 1.0, "accuracy": 0.9, "gap": float("nan"), "swap_flip_rate": 0.1},
              {"lambda": 4.0, "accuracy": 0.9, "gap": 0.2, "swap_flip_rate": 0.15}]
    assert choose(points, base_accuracy=0.9, max_accuracy_drop=0.0) == (2, True)
    assert choose(points, base_accuracy=0.9, max_accuracy_drop=0.0, key="swap_flip_rate") == (1, True)


def test_selection_options_are_checked(image) -> None:
    with pytest.raises(FairpromptError, match="swap_flips needs swap_terms"):
        ReprogramConfig(selection="swap_flips")
    with pytest.raises(FairpromptError, match="reprogram.selection is 'flips'; use gap or swap_flips"):
        ReprogramConfig(selection="flips")
    with pytest.raises(FairpromptError, match="swap_flips swaps identity phrases in texts; an image model"):
        _run_image(image, selection="swap_flips", swap_terms="identity_toxicity")
