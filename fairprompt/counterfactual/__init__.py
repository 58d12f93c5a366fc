"""Counterfactual audits of text models: swap the identity terms of each text and measure how the decision moves.

:mod:`~fairprompt.counterfactual.substitutions` holds the aligned identity-term lists and makes the swaps;
:mod:`~fairprompt.counterfactual.audit` scores each text and its variants with any text model and reports, per
group pair, the flip rate, the score change and each variant's decision rate with paired bootstrap CIs.
"""

from fairprompt.counterfactual.audit import CounterfactualAudit, PairResult, counterfactual_audit
from fairprompt.counterfactual.substitutions import BUILT_IN, Substitutions

__all__ = ["BUILT_IN", "CounterfactualAudit", "PairResult", "Substitutions", "counterfactual_audit"]
