"""The metric engine: count tables, rates, disparities and bootstrap CIs (numpy/pandas only, no torch)."""

from fairprompt.metrics.audit import INTERSECTION, MERGEABLE, Audit, AuditConfig, SliceAudit, audit, audit_tables
from fairprompt.metrics.compare import HEADLINE, compare_audits
from fairprompt.metrics.counts import CELLS, CountTable, merge_all
from fairprompt.metrics.disparities import DISPARITIES
from fairprompt.metrics.paired import paired_bootstrap
from fairprompt.metrics.point import auc_or_none, group_gap
from fairprompt.metrics.rates import RATE_NAMES, group_rates
from fairprompt.metrics.scores import SCORE_METRICS

__all__ = [
    "CELLS", "DISPARITIES", "HEADLINE", "INTERSECTION", "MERGEABLE", "RATE_NAMES", "SCORE_METRICS",
    "Audit", "AuditConfig", "CountTable", "SliceAudit", "auc_or_none", "audit", "audit_tables", "compare_audits", "group_gap",
    "group_rates", "merge_all", "paired_bootstrap",
]
