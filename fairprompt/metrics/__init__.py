"""The metric engine: count tables, rates, disparities and bootstrap CIs (numpy/pandas only, no torch)."""

from fairprompt.metrics.audit import INTERSECTION, MERGEABLE, Audit, AuditConfig, SliceAudit, audit
from fairprompt.metrics.counts import CELLS, CountTable, merge_all
from fairprompt.metrics.disparities import DISPARITIES
from fairprompt.metrics.rates import RATE_NAMES, group_rates
from fairprompt.metrics.scores import SCORE_METRICS

__all__ = [
    "CELLS", "DISPARITIES", "INTERSECTION", "MERGEABLE", "RATE_NAMES", "SCORE_METRICS",
    "Audit", "AuditConfig", "CountTable", "SliceAudit", "audit", "group_rates", "merge_all",
]
