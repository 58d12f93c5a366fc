"""Helpers shared by the test modules (import them as ``from factories import ...``; pytest puts tests/ on the path):
the command line run in-process, spec files, the one-line user-error check, solvers that reach their tolerance,
and the round trip of a written results.json.  The report tests' records live in ``report_factories``.

Solvers in tests must reach their tolerance on any machine of this kind: CPU floating-point kernels differ
between machines, and a fixed iteration count that converges on one can stall just short on another (an
L-BFGS refit stopped at a gradient norm of 0.0102 against 0.01 elsewhere).  :func:`lbfgs_to_tolerance` runs
full-batch L-BFGS in rounds, each restarted from where the last one stopped, until the gradient norm is
below the tolerance, within a bounded number of rounds, and says how far it got when it cannot.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import yaml
from click.testing import CliRunner

from fairprompt.cli import cli


def run_cli(*args: str) -> tuple[int, str, str]:
    """``fairprompt ARGS`` in-process: (exit code, stdout, stderr); an unexpected exception comes back as its
    traceback on stderr (exit code 1), so a failing assertion shows it."""
    result = CliRunner().invoke(cli, list(args), obj={})
    if result.exit_code == 1 and result.exc_info is not None and not isinstance(result.exc_info[1], SystemExit):
        return 1, result.stdout, "".join(traceback.format_exception(*result.exc_info))
    return result.exit_code, result.stdout, result.stderr


def write_spec(tmp_path: Path, spec: dict[str, Any] | str, name: str = "spec.yaml") -> Path:
    """Write a spec (a mapping, dumped as YAML, or YAML text as it is) to ``tmp_path/name``."""
    path = tmp_path / name
    path.write_text(spec if isinstance(spec, str) else yaml.safe_dump(spec), encoding="utf-8")
    return path


def assert_user_error(code: int, err: str, *fragments: str) -> None:
    """A user mistake: exit status 2 and exactly one line on stderr, ``error: ...`` with every fragment, no traceback."""
    assert code == 2, err
    lines = [line for line in err.strip().splitlines() if line]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def gradient_norm(objective: Callable[[], torch.Tensor], params: Sequence[torch.Tensor]) -> float:
    """Euclidean norm of the gradient of ``objective()`` with respect to ``params`` (nothing is accumulated)."""
    grads = torch.autograd.grad(objective(), list(params))
    return float(torch.sqrt(sum((g.detach() ** 2).sum() for g in grads)))


def lbfgs_to_tolerance(objective: Callable[[], torch.Tensor], params: Sequence[torch.Tensor], *, tol: float,
                       max_iter: int, max_rounds: int = 8, history_size: int = 20) -> float:
    """Minimise ``objective()`` over ``params`` by full-batch L-BFGS (strong Wolfe) until the gradient norm < ``tol``.

    Each round runs up to ``max_iter`` iterations from where the previous one stopped (a fresh curvature
    history, which also gets L-BFGS out of a stalled line search); at most ``max_rounds`` rounds.  Returns the
    final gradient norm; raises ``AssertionError`` with the norm reached when the budget runs out.  A run that
    converges in the first round is exactly the single fixed-length run it replaces.
    """
    params = list(params)
    norm = float("inf")
    for _ in range(max_rounds):
        optimizer = torch.optim.LBFGS(params, lr=1, max_iter=max_iter, tolerance_grad=1e-9, tolerance_change=1e-12,
                                      history_size=history_size, line_search_fn="strong_wolfe")

        def closure(optimizer: torch.optim.LBFGS = optimizer) -> torch.Tensor:
            optimizer.zero_grad()
            loss = objective()
            loss.backward()
            return loss

        optimizer.step(closure)
        optimizer.zero_grad(set_to_none=True)
        norm = gradient_norm(objective, params)
        if norm < tol:
            return norm
    raise AssertionError(f"L-BFGS stopped at gradient norm {norm:.3g} after {max_rounds} rounds of {max_iter} "
                         f"iterations; the tolerance is {tol:g}")


def assert_record_round_trips(path: Path) -> None:
    """The results.json at ``path`` is checked as a whole and written back byte for byte by the typed record."""
    from fairprompt.results import dumps, load_results

    assert dumps(load_results(path).to_json()) == Path(path).read_text(encoding="utf-8")
