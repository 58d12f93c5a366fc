"""Audits at any scale: predictions files read batch by batch into count tables and score histograms
(:mod:`fairprompt.scale.scan`), or aggregated on Apache Spark (:mod:`fairprompt.scale.spark`), then audited from the
merged tables (:func:`fairprompt.metrics.audit.audit_tables`)."""

from fairprompt.scale.scan import EXACT_ROWS, Columns, ScanResult, TableBuilder, scan_predictions

__all__ = ["EXACT_ROWS", "Columns", "ScanResult", "TableBuilder", "scan_predictions"]
