"""FairIJ's influence core: exact per-row Jacobians, surrogates and curvature, and IJ predictions vs exact refits.

Two models where exact refits are cheap: logistic regression on a synthetic tabular problem (convex,
exact Newton refits) and a 2-token prompt + head on a tiny randomly initialised BERT (hidden 32, one
layer; float64, full-batch L-BFGS refits warm-started from theta_hat).  Both objectives carry an L2
term so the optimum is unique (locally, for the prompt); removal = weight 0 with the 1/n kept, the
convention the infinitesimal jackknife differentiates.
"""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
import torch

from factories import lbfgs_to_tolerance
from fairprompt.errors import FairpromptError
from fairprompt.mitigation.fairij_method.influence import (
    CURVATURE_NAME,
    MarginJacobian,
    fairness_surrogate,
    fit_logistic,
    gauss_newton,
    ij_update,
    influence_scores,
    logistic_margins,
    parameter_change,
    predicted_change,
    prompt_margins,
    score_prompt,
    validation_loss,
)
from fairprompt.models.frozen import state_sha256
from fairprompt.models.text import FrozenTextClassifier

L2 = 1e-2
MIN_R = 0.95


def _pearson(a, b) -> float:
    return float(np.corrcoef(np.asarray(a, dtype=float), np.asarray(b, dtype=float))[0, 1])


# ------------------------------------------------------------------------------------ logistic regression
def _tabular(n: int, seed: int, *, groups: int = 2) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    g = rng.integers(0, groups, n)
    X = rng.normal(size=(n, 4))
    X[:, 0] += 0.8 * g
    logit = 1.2 * X[:, 0] - 0.8 * X[:, 1] + 0.5 * X[:, 2] + 0.7 * g - 0.3
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    return X, y, g


@pytest.fixture(scope="module")
def logistic():
    X, y, _ = _tabular(200, 0)
    Xv, yv, gv = _tabular(200, 1)
    w, b = fit_logistic(features=X, labels=y, l2=L2)
    return X, y, Xv, yv, gv, w, b


def _central_difference(f, theta: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    out = np.zeros_like(theta)
    for j in range(theta.size):
        e = np.zeros_like(theta)
        e[j] = eps
        out[j] = (f(theta + e) - f(theta - e)) / (2 * eps)
    return out


@pytest.mark.parametrize("measure,temperature,groups", [
    ("demographic_parity", None, 2), ("equal_opportunity", None, 2), ("equalized_odds", None, 3),
    ("demographic_parity", 0.05, 3), ("equalized_odds", 0.1, 2),
])
def test_surrogate_gradients_match_finite_differences(measure, temperature, groups) -> None:
    Xv, yv, gv = _tabular(150, 2, groups=groups)
    theta = np.array([0.7, -0.4, 0.3, 0.1, -0.2])

    def value(t: np.ndarray) -> float:
        margins = logistic_margins(features=Xv, weight=t[:4], bias=t[4])
        return fairness_surrogate(validation=margins, labels=yv, groups=gv, measure=measure, temperature=temperature).value

    F = fairness_surrogate(validation=logistic_margins(features=Xv, weight=theta[:4], bias=theta[4]), labels=yv, groups=gv,
                           measure=measure, temperature=temperature)
    np.testing.assert_allclose(F.gradient.numpy(), _central_difference(value, theta), rtol=1e-6, atol=1e-9)
    assert F.value > 0
    if temperature is not None:  # the smooth max lies between the max gap and max gap + tau log(G(G-1)) (per gap)
        exact = sum(part["max_gap"] for part in F.detail["gaps"])
        assert exact <= F.value <= exact + len(F.detail["gaps"]) * temperature * np.log(groups * (groups - 1)) + 1e-12
    else:  # the max pairwise gap is max - min of the group means
        for part in F.detail["gaps"]:
            means = part["group_means"]
            a, b = part["pair"]
            assert means[a] == max(means.values()) and means[b] == min(means.values())


def test_loss_gradients_and_gauss_newton_match_finite_differences(logistic) -> None:
    X, y, Xv, yv, gv, w, b = logistic
    theta = np.concatenate([w, [b]])
    U = validation_loss(validation=logistic_margins(features=Xv, weight=w, bias=b), labels=yv)
    u = lambda t: validation_loss(validation=logistic_margins(features=Xv, weight=t[:4], bias=t[4]), labels=yv).value  # noqa: E731
    np.testing.assert_allclose(U.gradient.numpy(), _central_difference(u, theta), rtol=1e-6, atol=1e-9)

    # per-row gradients g_i = (p_i - y_i) J_i against autograd, and H against differences of the objective's gradient
    train = logistic_margins(features=X, weight=w, bias=b)
    t = torch.tensor(theta, requires_grad=True)
    A = torch.cat([torch.tensor(X), torch.ones(len(X), 1, dtype=torch.float64)], dim=1)
    z = A @ t
    per_row = torch.nn.functional.softplus(z) - torch.tensor(y, dtype=torch.float64) * z
    for i in (0, 17, 199):
        (g,) = torch.autograd.grad(per_row[i], t, retain_graph=True)
        ours = (torch.sigmoid(train.z[i]) - y[i]) * train.J[i]
        torch.testing.assert_close(ours, g, rtol=1e-12, atol=1e-14)

    def objective_gradient(th: np.ndarray) -> np.ndarray:
        tt = torch.tensor(th, requires_grad=True)
        zz = A @ tt
        loss = (torch.nn.functional.softplus(zz) - torch.tensor(y, dtype=torch.float64) * zz).mean() + 0.5 * L2 * tt.dot(tt)
        return torch.autograd.grad(loss, tt)[0].numpy()

    H_fd = np.stack([(objective_gradient(theta + e) - objective_gradient(theta - e)) / 2e-6 for e in np.eye(5) * 1e-6])
    curvature = gauss_newton(train=train, labels=y, l2=L2, damping=0.0)
    H = (curvature.cholesky @ curvature.cholesky.T).numpy()  # logistic regression: the GGN is the exact Hessian
    np.testing.assert_allclose(H, H_fd, rtol=1e-6, atol=1e-9)
    assert curvature.name == CURVATURE_NAME and curvature.damping == 0.0 and not curvature.damping_raised


def test_logistic_influence_matches_exact_leave_out_refits(logistic) -> None:
    X, y, Xv, yv, gv, w, b = logistic
    train = logistic_margins(features=X, weight=w, bias=b)
    validation = logistic_margins(features=Xv, weight=w, bias=b)
    scores = influence_scores(train=train, train_labels=y, validation=validation, validation_labels=yv, groups=gv,
                              l2=L2, damping=0.0)
    assert scores.mean_gradient_norm < 1e-8 and scores.fairness > 0.1
    assert scores.curvature == CURVATURE_NAME and (scores.n, scores.p) == (200, 5)
    assert scores.eigen["effective_rank"] == 5 and np.isfinite(scores.influence_utility).all()

    def actual(rows) -> tuple[float, np.ndarray]:
        weights = np.ones(len(y))
        weights[list(rows)] = 0.0
        w2, b2 = fit_logistic(features=X, labels=y, weights=weights, l2=L2, init=(w, b))
        F = fairness_surrogate(validation=logistic_margins(features=Xv, weight=w2, bias=b2), labels=yv, groups=gv).value
        return F - scores.fairness, np.concatenate([w2, [b2]])

    order = np.argsort(scores.influence_fairness)
    rng = np.random.default_rng(5)
    singles = [*order[:8], *order[-8:], *rng.choice(len(y), 8, replace=False)]
    sets = [order[:k] for k in (2, 5, 10)] + [order[-k:] for k in (2, 5, 10)] + \
           [rng.choice(len(y), k, replace=False) for k in (2, 4, 6, 8, 10)]
    single_pred = [predicted_change(scores=scores, rows=[i])["fairness"] for i in singles]
    single_act = [actual([i])[0] for i in singles]
    set_pred = [predicted_change(scores=scores, rows=s)["fairness"] for s in sets]
    set_act = [actual(s)[0] for s in sets]
    assert _pearson(single_pred, single_act) >= MIN_R  # measured 0.9999
    assert _pearson(set_pred, set_act) >= MIN_R        # measured 0.998
    assert np.sign(set_pred[0]) == np.sign(set_act[0]) == -1  # removing the top rows lowers the gap: the sign is right

    # the predicted parameter change and the one-step update against the refit; graded weights are linear
    theta_hat = np.concatenate([w, [b]])
    _, refit = actual(sets[2])
    step = parameter_change(scores=scores, rows=sets[2]).numpy()
    cosine = step @ (refit - theta_hat) / np.linalg.norm(step) / np.linalg.norm(refit - theta_hat)
    assert cosine > 0.99
    updated = ij_update(scores=scores, rows=sets[2])
    np.testing.assert_allclose(np.concatenate([updated[0].numpy(), updated[1].reshape(1).numpy()]), theta_hat + step)
    half = np.zeros(len(y))
    half[sets[2]] = 0.5
    assert predicted_change(scores=scores, alphas=half)["fairness"] == pytest.approx(set_pred[2] / 2)


def test_singular_curvature_raises_damping_and_reports_it() -> None:
    X, y, g = _tabular(120, 3)
    X = np.column_stack([X, X[:, 0], np.zeros(len(y))])  # a duplicated feature and a zero-variance one
    w, b = fit_logistic(features=X, labels=y, l2=L2)
    train = logistic_margins(features=X, weight=w, bias=b)
    scores = influence_scores(train=train, train_labels=y, validation=logistic_margins(features=X, weight=w, bias=b),
                              validation_labels=y, groups=g, l2=0.0, damping=0.0)
    assert scores.damping_raised and scores.damping > 0 and scores.damping_requested == 0.0
    assert scores.eigen["effective_rank"] == 5 and scores.summary()["damping_raised"] is True
    assert np.isfinite(scores.influence_fairness).all() and np.isfinite(scores.influence_utility).all()
    assert np.isfinite(parameter_change(scores=scores, rows=[0, 1]).numpy()).all()


def test_conjugate_gradient_solve_matches_cholesky(logistic, monkeypatch: pytest.MonkeyPatch) -> None:
    import fairprompt.mitigation.fairij_method.curvature as curvature

    X, y, Xv, yv, gv, w, b = logistic
    train = logistic_margins(features=X, weight=w, bias=b)
    validation = logistic_margins(features=Xv, weight=w, bias=b)
    common = dict(train=train, train_labels=y, validation=validation, validation_labels=yv, groups=gv, l2=L2, damping=1e-6)
    dense = influence_scores(**common, solver="cholesky")
    cg = influence_scores(**common, solver="cg")
    assert dense.curvature == CURVATURE_NAME and cg.curvature == curvature.CG_NAME and cg.eigen == {}
    assert cg.solver_info["probe_residual"] <= curvature.CG_TOLERANCE and cg.solver_info["probe_iterations"] >= 1
    np.testing.assert_allclose(cg.influence_fairness, dense.influence_fairness, rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(cg.influence_utility, dense.influence_utility, rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(parameter_change(scores=cg, rows=[0, 3, 7]).numpy(),
                               parameter_change(scores=dense, rows=[0, 3, 7]).numpy(), rtol=1e-6, atol=1e-12)
    # "auto" picks the matrix-free solve above the dense limit
    monkeypatch.setattr(curvature, "DENSE_MAX_PARAMETERS", train.p - 1)
    assert influence_scores(**common).curvature == curvature.CG_NAME
    # a singular GGN with zero damping: CG raises the damping and says so, no NaN
    Xs, ys, gs = _tabular(120, 3)
    Xs = np.column_stack([Xs, Xs[:, 0], np.zeros(len(ys))])  # a duplicated feature and a zero-variance one
    ws, bs = fit_logistic(features=Xs, labels=ys, l2=L2)
    margins = logistic_margins(features=Xs, weight=ws, bias=bs)
    singular = influence_scores(train=margins, train_labels=ys, validation=margins, validation_labels=ys, groups=gs,
                                l2=0.0, damping=0.0, solver="cg")
    assert singular.damping_raised and singular.damping > 0 and np.isfinite(singular.influence_fairness).all()
    with pytest.raises(FairpromptError, match="unknown curvature solver"):
        influence_scores(**common, solver="lanczos")


def test_bad_input_is_refused(logistic) -> None:
    X, y, Xv, yv, gv, w, b = logistic
    train = logistic_margins(features=X, weight=w, bias=b)
    validation = logistic_margins(features=Xv, weight=w, bias=b)
    with pytest.raises(FairpromptError, match="single group"):
        fairness_surrogate(validation=validation, labels=yv, groups=np.zeros(len(yv)))
    with pytest.raises(FairpromptError, match="no validation rows with y = 1"):
        fairness_surrogate(validation=validation, labels=np.where(gv == 1, 0, yv), groups=gv, measure="equal_opportunity")
    with pytest.raises(FairpromptError, match="0/1"):
        validation_loss(validation=validation, labels=yv * 2)
    with pytest.raises(FairpromptError, match="one group label per validation row"):
        fairness_surrogate(validation=validation, labels=yv, groups=gv[:-1])
    with pytest.raises(FairpromptError, match="different parameters"):
        influence_scores(train=train, train_labels=y, validation=logistic_margins(features=Xv, weight=w * 2, bias=b),
                         validation_labels=yv, groups=gv)
    with pytest.raises(FairpromptError, match="non-finite"):
        MarginJacobian(z=torch.tensor([float("nan")], dtype=torch.float64), J=torch.zeros(1, 1, dtype=torch.float64),
                       theta=torch.zeros(1, dtype=torch.float64), shapes=((1,),), names=("w",))


# -------------------------------------------------------------------------------------- tiny prompted BERT
GOOD = ["good", "great", "fine", "happy", "nice"]
BAD = ["bad", "awful", "poor", "sad", "rude"]
NOUNS = ["food", "staff", "room", "trip", "show"]


def _texts(n: int, seed: int) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Short reviews whose label follows the sentiment word, 15% noise, and a group word ('alpha' > 'beta' positive)."""
    rng = np.random.default_rng(seed)
    texts, labels, groups = [], [], []
    for _ in range(n):
        g = int(rng.integers(0, 2))
        positive = bool(rng.random() < 0.2 + 0.6 * g)
        word = (GOOD if positive else BAD)[rng.integers(5)]
        labels.append(int(positive) if rng.random() > 0.15 else 1 - int(positive))
        texts.append(f"{['beta', 'alpha'][g]} said the {NOUNS[rng.integers(5)]} was {word}")
        groups.append(g)
    return texts, np.array(labels), np.array(groups)


def _objective(model: FrozenTextClassifier, batch, weights: torch.Tensor) -> torch.Tensor:
    """(1/n) sum w_i CE_i + (L2/2)|theta|^2 over one padded full batch."""
    z, _ = model.margins_and_features(batch["input_ids"], batch["attention_mask"])
    y = batch["labels"].to(z.dtype)
    penalty = sum((p * p).sum() for p in model.task_parameters())
    return (weights * (torch.nn.functional.softplus(z) - y * z)).sum() / len(weights) + 0.5 * L2 * penalty


def _refit(model: FrozenTextClassifier, batch, weights: torch.Tensor, *, tol: float, max_iter: int) -> float:
    """Deterministic full-batch L-BFGS on the task parameters until the gradient norm is below ``tol``
    (:func:`factories.lbfgs_to_tolerance`, rounds of ``max_iter`` iterations); returns the final norm."""
    return lbfgs_to_tolerance(lambda: _objective(model, batch, weights), model.task_parameters(), tol=tol,
                              max_iter=max_iter)


@contextlib.contextmanager
def _restored(model: FrozenTextClassifier):
    saved = [p.detach().clone() for p in model.task_parameters()]
    try:
        yield
    finally:
        with torch.no_grad():
            for p, s in zip(model.task_parameters(), saved):
                p.copy_(s)


@pytest.fixture(scope="module")
def prompted(tiny_backbone):
    """A 2-token prompt + head on the tiny BERT, float64, trained with L2 to a tight optimum."""
    model = FrozenTextClassifier.with_task_prompt(backbone=tiny_backbone, num_virtual_tokens=2, init="random", seed=0)
    model = model.to(torch.float64)
    texts, y, _ = _texts(60, 0)
    vtexts, yv, gv = _texts(60, 1)
    train, validation = model.encode(texts, labels=y), model.encode(vtexts, labels=yv)
    batch = train.collate(list(range(len(train))))
    assert _refit(model, batch, torch.ones(len(train), dtype=torch.float64), tol=1e-5, max_iter=2000) < 1e-5
    return model, train, validation, gv, batch


def _margins_moved(model: FrozenTextClassifier, rows, param: torch.Tensor, flat: int, delta: float) -> np.ndarray:
    """The margins of ``rows`` with coordinate ``flat`` of ``param`` moved by ``delta`` (and moved back after)."""
    with torch.no_grad():
        param.view(-1)[flat] += delta
        out = prompt_margins(model=model, rows=rows, batch_size=5).z.numpy()
        param.view(-1)[flat] -= delta
    return out


def test_prompt_margins_are_exact_per_row_on_padded_batches(tiny_backbone) -> None:
    texts = ["alpha said the food was good", "beta", "the staff at the hotel were rude and the room was dirty",
             "alpha liked it", "a very long review of a show that went on and on, and then some more"]
    for dtype, tolerance in ((torch.float64, 1e-10), (torch.float32, 2e-5)):
        model = FrozenTextClassifier.with_task_prompt(backbone=tiny_backbone, num_virtual_tokens=2, init="random", seed=1)
        model = model.to(dtype)
        rows = model.encode(texts, labels=np.array([1, 0, 0, 1, 0]))
        margins = prompt_margins(model=model, rows=rows, batch_size=3)  # padded batches of mixed lengths
        assert margins.shapes == ((2, 32), (2, 32), (2,)) and margins.p == 2 * 32 + 2 * 32 + 2
        torch.testing.assert_close(margins.theta, torch.cat([p.detach().double().reshape(-1) for p in model.task_parameters()]))
        for i in range(len(texts)):  # plain autograd, one unpadded row at a time, through the model's own forward
            single = rows.collate([i])
            logits = model(input_ids=single["input_ids"], attention_mask=single["attention_mask"])
            z = logits[0, 1] - logits[0, 0]
            grads = torch.autograd.grad(z, model.task_parameters())
            expected = torch.cat([g.reshape(-1) for g in grads]).double()
            assert abs(float(z.detach()) - float(margins.z[i])) < tolerance * 10
            torch.testing.assert_close(margins.J[i], expected, rtol=0, atol=tolerance * max(1.0, float(expected.abs().max())))
        if dtype is torch.float64:  # central finite differences in two prompt coordinates and one head coordinate
            prompt, head = model.task_prompt_embedding(), model.head()
            for param, flat, column in ((prompt, 5, 5), (prompt, 40, 40), (head.weight, 33, 64 + 33)):
                fd = (_margins_moved(model, rows, param, flat, 1e-6) - _margins_moved(model, rows, param, flat, -1e-6)) / 2e-6
                np.testing.assert_allclose(margins.J[:, column].numpy(), fd, rtol=1e-6, atol=1e-8)


@pytest.mark.slow  # leave-out refits to convergence
def test_prompt_influence_matches_refits(prompted) -> None:
    model, train, validation, gv, batch = prompted
    encoder_before = state_sha256(model.encoder)
    scores = score_prompt(model=model, train_rows=train, validation_rows=validation, groups=gv, l2=L2, damping=0.0)
    assert scores.mean_gradient_norm < 1e-5 and scores.fairness > 0.2 and not scores.damping_raised
    assert scores.p == 130 and scores.eigen["effective_rank"] == 130  # the L2 term makes H full rank

    def actual(rows) -> float:
        with _restored(model):
            weights = torch.ones(len(train), dtype=torch.float64)
            weights[list(rows)] = 0.0
            # restarted until the refit is at its optimum (on some CPUs one run of 200 iterations stalls at ~4e-4)
            assert _refit(model, batch, weights, tol=1e-4, max_iter=200) < 1e-4
            after = prompt_margins(model=model, rows=validation, batch_size=64)
            return fairness_surrogate(validation=after, labels=validation.labels, groups=gv).value - scores.fairness

    order = np.argsort(scores.influence_fairness)
    rng = np.random.default_rng(5)
    singles = [*order[:4], *order[-4:], *rng.choice(len(train), 4, replace=False)]
    sets = [order[:k] for k in (2, 4, 6)] + [order[-k:] for k in (2, 4, 6)] + [rng.choice(len(train), k, replace=False)
                                                                                for k in (3, 5)]
    single_pred = [predicted_change(scores=scores, rows=[i])["fairness"] for i in singles]
    single_act = [actual([i]) for i in singles]
    set_pred = [predicted_change(scores=scores, rows=s)["fairness"] for s in sets]
    set_act = [actual(s) for s in sets]
    assert _pearson(single_pred, single_act) >= MIN_R  # measured 0.9999
    assert _pearson(set_pred, set_act) >= MIN_R        # measured 0.998 (the first-order prediction is ~15% short on sets)
    assert set_pred[2] < 0 and set_act[2] < 0
    assert state_sha256(model.encoder) == encoder_before


def test_ij_update_reduces_unfairness_and_leaves_the_backbone_alone(prompted) -> None:
    model, train, validation, gv, _ = prompted
    encoder_before = state_sha256(model.encoder)
    theta_before = [p.detach().clone() for p in model.task_parameters()]
    scores = score_prompt(model=model, train_rows=train, validation_rows=validation, groups=gv, l2=L2, damping=1e-3)
    assert all(torch.equal(a, b) for a, b in zip(theta_before, model.task_parameters()))  # scoring changes nothing
    top = np.argsort(scores.influence_fairness)[:6]  # the 10% whose removal most lowers the gap
    predicted = predicted_change(scores=scores, rows=top)
    updated = ij_update(scores=scores, rows=top)
    assert [tuple(t.shape) for t in updated] == [tuple(p.shape) for p in model.task_parameters()]
    assert all(torch.equal(a, b) for a, b in zip(theta_before, model.task_parameters()))  # the update is returned, not applied
    with _restored(model):
        with torch.no_grad():
            for p, t in zip(model.task_parameters(), updated):
                p.copy_(t)
        after = fairness_surrogate(validation=prompt_margins(model=model, rows=validation), labels=validation.labels,
                                   groups=gv).value
    assert predicted["fairness"] < -0.05
    assert after < scores.fairness - 0.05
    assert state_sha256(model.encoder) == encoder_before
    assert all(not p.requires_grad for p in model.encoder.parameters())
