"""The shared solver helper reaches its tolerance by restarting, and says how far it got when it cannot."""

from __future__ import annotations

import pytest
import torch

from factories import lbfgs_to_tolerance


def _start() -> torch.Tensor:
    return torch.tensor([-1.5, 2.0], dtype=torch.float64, requires_grad=True)


def _rosenbrock(x: torch.Tensor) -> torch.Tensor:
    return (1 - x[0]) ** 2 + 100 * (x[1] - x[0] ** 2) ** 2


def test_lbfgs_restarts_until_the_tolerance_holds() -> None:
    stalled = _start()  # one round of 5 iterations stops short of the optimum ...
    with pytest.raises(AssertionError,
                       match=r"stopped at gradient norm .* after 1 rounds of 5 iterations; the tolerance is 0.0001"):
        lbfgs_to_tolerance(lambda: _rosenbrock(stalled), [stalled], tol=1e-4, max_iter=5, max_rounds=1)
    x = _start()  # ... further rounds continue from where each one stopped, until the tolerance holds
    assert lbfgs_to_tolerance(lambda: _rosenbrock(x), [x], tol=1e-4, max_iter=5, max_rounds=200) < 1e-4
    torch.testing.assert_close(x.detach(), torch.tensor([1.0, 1.0], dtype=torch.float64), rtol=0, atol=1e-3)
