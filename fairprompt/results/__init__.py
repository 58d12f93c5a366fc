"""The typed record of a run: ``results.json`` as pydantic models (torch-free, low in the house).

- :class:`Results` and :func:`load_results` / :func:`parse_results` / :func:`write_results` /
  :func:`build_results` (:mod:`fairprompt.results.run`): the whole record, checked as a whole.
- :mod:`~fairprompt.results.audit`: an audit (slices, groups, disparities, compliance, count table).
- :mod:`~fairprompt.results.model`: what produced the predictions, one type per kind (:data:`MODEL_KINDS`),
  and :func:`model_in_words`.
- :mod:`~fairprompt.results.repairs`, :mod:`~fairprompt.results.fairij`, :mod:`~fairprompt.results.reprogram`:
  a repair's record.
- :mod:`~fairprompt.results.schema`: the JSON Schema generated from these models (checked in as
  ``results.schema.json``).

Mitigations and the pipeline build the record; the report parses it once and reads attributes.
"""

from fairprompt.results.audit import AuditRecord, Estimate, GroupRow, SliceRecord
from fairprompt.results.base import VOLATILE_KEYS, Record, dumps, stable, stable_dumps, to_jsonable
from fairprompt.results.model import MODEL_KINDS, ImageModel, TabularModel, TextModel, model_in_words
from fairprompt.results.repairs import FailedRepair, FairIJRepair, NotRunRepair, ReprogramRepair
from fairprompt.results.run import (
    SCHEMA,
    SCHEMA_VERSION,
    Results,
    build_results,
    load_results,
    package_versions,
    parse_results,
    write_results,
)

__all__ = [
    "MODEL_KINDS", "SCHEMA", "SCHEMA_VERSION", "VOLATILE_KEYS", "AuditRecord", "Estimate", "FailedRepair",
    "FairIJRepair", "GroupRow", "ImageModel", "NotRunRepair", "Record", "ReprogramRepair", "Results", "SliceRecord",
    "TabularModel", "TextModel", "build_results", "dumps", "load_results", "model_in_words", "package_versions",
    "parse_results", "stable", "stable_dumps", "to_jsonable", "write_results",
]
