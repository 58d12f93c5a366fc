"""The discrim-eval trigger's objective: a scenario's decision should not depend on its demographic variant, while
its mean score stays where the un-repaired model put it.

For one scenario's rows in a step (the reference person and a sample of other variants), with triggered scores
``s`` and the un-repaired scores ``u`` of the same rows::

    loss = (mean(s) - mean(u))**2  +  lam * mean((s - mean(s))**2)

The first term (the anchor) keeps the scenario's answer, so a trigger that answers "yes" (or "no") to everything, or
that scrambles which scenarios get which answer, pays for it; the second (the spread) is the variance of the score
across demographic variants, zero when none of them moves the decision.  ``lam = 0`` trains the anchor alone: the
control, a trigger of the same length and place that was never asked to be fair.
"""

from __future__ import annotations

import torch


def invariance_loss(triggered: torch.Tensor, unrepaired: torch.Tensor, *, lam: float) -> tuple[torch.Tensor,
                                                                                                   dict[str, float]]:
    """The loss of one scenario's rows (module docstring) and its two terms."""
    anchor = (triggered.mean() - unrepaired.mean()) ** 2
    spread = ((triggered - triggered.mean()) ** 2).mean()
    return anchor + lam * spread, {"anchor": float(anchor.detach()), "spread": float(spread.detach()),
                                   "unrepaired_spread": float(((unrepaired - unrepaired.mean()) ** 2).mean())}


__all__ = ["invariance_loss"]
