"""How the report writes numbers, names and facts: one home for every section's formatting.

Nothing here knows results.json's layout, models or markup: each function takes a value (None or NaN for a
missing one, shown as a dash) and returns text; user strings are escaped by the renderers.
"""

from __future__ import annotations

import json
import math
import shlex
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from markupsafe import Markup

DASH = "—"

LABELS: dict[str, str] = {
    "base_rate": "Base rate",
    "selection_rate": "Selection rate",
    "tpr": "TPR",
    "fpr": "FPR",
    "tnr": "TNR",
    "fnr": "FNR",
    "ppv": "PPV",
    "npv": "NPV",
    "fdr": "FDR",
    "for": "FOR",
    "accuracy": "Accuracy",
    "balanced_accuracy": "Balanced accuracy",
    "auc": "AUC",
    "brier": "Brier",
    "ece": "ECE",
    "scoring_rate": "Scoring rate",
    "theil_index": "Theil index",
    "generalized_entropy_index": "Generalized entropy index (α=2)",
    "demographic_parity_difference": "Demographic parity difference",
    "demographic_parity_ratio": "Demographic parity ratio",
    "disparate_impact": "Disparate impact",
    "equalized_odds_difference": "Equalized odds difference",
    "equalized_odds_difference_mean": "Equalized odds difference (mean)",
    "equal_opportunity_difference": "Equal opportunity difference",
    "average_odds_difference": "Average odds difference",
    "predictive_parity_difference": "Predictive parity difference",
    "fpr_difference": "FPR difference",
    "fnr_difference": "FNR difference",
    "accuracy_difference": "Accuracy difference",
    "between_group_theil_index": "Between-group Theil index",
    "between_group_generalized_entropy_index": "Between-group generalized entropy index (α=2)",
    "auc_difference": "AUC difference",
    "scoring_rate_difference": "Scoring rate difference",
}

MEASURES: dict[str, str] = {
    "demographic_parity": "demographic parity",
    "equal_opportunity": "equal opportunity",
    "equalized_odds": "equalized odds",
}
"""A repair's fairness measure in words."""

SOURCES: dict[str, str] = {
    "trained in this run": "trained in this run",
    "cache": "loaded from the cache (trained by an earlier run with the same data, settings and seed)",
    "shipped with fairprompt": "shipped with fairprompt (trained once, by its authors)",
}
"""Where a trained part came from, in words."""


def label(name: str) -> str:
    """Display name of a metric or disparity (the key itself when unknown)."""
    return LABELS.get(name, name.replace("_", " ").capitalize())


def number(x: Any) -> float | None:
    """``x`` as a finite float, or None (missing, NaN, infinite, a bool or not a number)."""
    if x is None or isinstance(x, bool):
        return None
    try:
        value = float(x)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def whole(x: Any) -> int | None:
    """``x`` rounded to an int, or None."""
    value = number(x)
    return None if value is None else int(round(value))


def fmt_num(x: Any, digits: int = 3) -> str:
    """``0.412``; a dash for a missing or non-finite value."""
    value = number(x)
    return DASH if value is None else f"{value:.{digits}f}"


def fmt_int(x: Any) -> str:
    """``5,000``; a dash when missing."""
    value = number(x)
    return DASH if value is None else f"{int(round(value)):,}"


def fmt_pct(x: Any, digits: int = 1) -> str:
    """A share as a percentage, ``29.9%``."""
    value = number(x)
    return DASH if value is None else f"{100.0 * value:.{digits}f}%"


def fmt_weight(x: Any) -> str:
    value = number(x)
    return DASH if value is None else f"{value:,.2f}"


def fmt_general(x: Any) -> str:
    """Three significant digits (``0.00123``, ``1.2e+04``); a dash when missing."""
    value = number(x)
    return DASH if value is None else f"{value:.3g}"


def fmt_signed(a: Any, b: Any, digits: int = 3) -> str:
    """``a - b`` with its sign (``+0.012``, ``−0.040``); a dash when either is missing."""
    x, y = number(a), number(b)
    if x is None or y is None:
        return DASH
    d = round(x - y, digits)
    return f"{'−' if d < 0 else '+' if d > 0 else '±'}{abs(d):.{digits}f}"


def fmt_change(x: Any, digits: int = 3) -> str:
    """A change with its sign (``+0.012``, ``−0.040``, ``±0.000``); a dash when missing."""
    return fmt_signed(x, 0.0, digits)


def fmt_points(x: Any) -> str:
    """A change of a share in percentage points: ``+0.1 pt``, ``−0.4 pt``, ``±0.0 pt``; a dash when missing."""
    value = number(x)
    if value is None:
        return DASH
    d = round(100.0 * value, 1)
    return f"{'−' if d < 0 else '+' if d > 0 else '±'}{abs(d):.1f} pt"


def fmt_seconds(x: Any) -> str:
    """``7.6 s``, ``2 min 05 s``, ``1 h 02 min``; a dash when missing."""
    value = number(x)
    if value is None:
        return DASH
    if value < 60:
        return f"{value:.1f} s"
    minutes, seconds = divmod(int(round(value)), 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def fmt_share(x: Any) -> str:
    """A small share as a percentage with two significant digits: ``0.017%``, ``1.2%``, ``35%``."""
    value = number(x)
    if value is None:
        return DASH
    pct = 100.0 * value
    if pct == 0:
        return "0%"
    digits = max(0, 1 - int(math.floor(math.log10(abs(pct)))))
    return f"{pct:.{digits}f}%"


def fmt_lambda(x: Any) -> str:
    """``4``, ``0.5``; a dash when missing."""
    value = number(x)
    return DASH if value is None else f"{value:g}"


def short_hash(x: Any, n: int = 12) -> str:
    """The first ``n`` characters of a hash, with an ellipsis."""
    text = str(x)
    return text if len(text) <= n else text[:n] + "…"


def plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def dropped_text(rows: int | None, by_column: Mapping[str, int] | None) -> str | None:
    """The rows a predictions audit left out for a missing label, prediction, score or weight (``--drop-missing``),
    in words: ``5 rows with a missing outcome (3) or decision (2), left out before the audit (--drop-missing)``;
    None when the run did not drop such rows (it refuses them by default)."""
    if rows is None:
        return None
    if rows == 0:
        return "none (--drop-missing: no row had a missing label, prediction, score or weight)"
    columns = " or ".join(f"{column} ({count:,})" for column, count in (by_column or {}).items())
    return f"{plural(rows, 'row')} with a missing {columns or 'value'}, left out before the audit (--drop-missing)"


def as_text(value: Any) -> str:
    """A setting's value as text: a string as it is, anything else as compact JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=False, default=str)


def settings(values: Mapping[str, Any] | None) -> tuple[tuple[str, str], ...]:
    """``(key, value as text)`` pairs of a settings mapping, in order (empty for None)."""
    return tuple((str(k), as_text(v)) for k, v in (values or {}).items())


def command_line(command: Sequence[str] | None) -> str | None:
    """A recorded command line, shell-quoted; None when absent or empty."""
    return shlex.join(str(c) for c in command) if command else None


def source_text(source: str | None) -> str:
    """Where a trained part came from, in words (a phrase fairprompt does not know is shown as it is)."""
    return SOURCES.get(str(source), str(source)) if source is not None else DASH


def fairness_name(measure: str | None, group: str | None) -> str:
    """``demographic parity gap of sex``."""
    what = MEASURES.get(str(measure), str(measure or "fairness").replace("_", " "))
    return f"{what} gap of {group}" if group else f"{what} gap"


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its confidence interval; ``reason`` says why an undefined value is undefined."""

    value: float | None
    low: float | None = None
    high: float | None = None
    reason: str | None = None
    note: int | None = None

    @classmethod
    def of(cls, value: Any, low: Any = None, high: Any = None, *, reason: str | None = None,
           note: int | None = None) -> Estimate:
        """An estimate from recorded numbers (None or NaN where missing); ``reason`` and ``note`` only when undefined."""
        v = number(value)
        return cls(v, number(low), number(high), reason=reason if v is None else None, note=note if v is None else None)

    @property
    def defined(self) -> bool:
        return self.value is not None

    @property
    def has_ci(self) -> bool:
        return self.low is not None and self.high is not None

    @property
    def value_text(self) -> str:
        return fmt_num(self.value)

    @property
    def ci_text(self) -> str:
        """``[0.401, 0.423]``, or an empty string without an interval."""
        return f"[{fmt_num(self.low)}, {fmt_num(self.high)}]" if self.has_ci and self.defined else ""

    @property
    def text(self) -> str:
        """``0.412 [0.401, 0.423]``; a dash when undefined."""
        if not self.defined:
            return DASH
        return f"{self.value_text} {self.ci_text}" if self.ci_text else self.value_text

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class Fact:
    """One row of a facts table: ``label``, a value, a muted ``note``.

    ``code`` lists names shown as code after the value (column names); ``block`` is a longer text shown on its
    own (an example input); ``title`` a tooltip.
    """

    label: str
    value: str
    note: str = ""
    code: tuple[str, ...] = ()
    block: str | None = None
    title: str | None = None
    summary: bool = False
    """Also listed in the Markdown summary."""


BIDI_CONTROLS: dict[str, str] = {"\u202a": "LRE", "\u202b": "RLE", "\u202c": "PDF", "\u202d": "LRO", "\u202e": "RLO",
                                 "\u2066": "LRI", "\u2067": "RLI", "\u2068": "FSI", "\u2069": "PDI"}
"""The explicit bidirectional controls (embeddings, overrides, isolates): in a user's string they reorder text."""


def visible_controls(text: str) -> str:
    """``text`` with each explicit bidirectional control shown as ``<U+202E RLO>``: a group name that hides one is
    shown as it is, and cannot reverse what follows it."""
    return "".join(f"<U+{ord(ch):04X} {BIDI_CONTROLS[ch]}>" if ch in BIDI_CONTROLS else ch for ch in text)


def isolate_bidi(value: Any) -> Any:
    """A string of the page, made unable to reorder the text around it (the plain-text ``<bdi>``); anything else,
    and Markup (escaped already, or made by fairprompt), as it is.

    Explicit controls (a U+202E override in a group name, say) are shown (:func:`visible_controls`), and a string
    with right-to-left letters is wrapped in FIRST STRONG ISOLATE ... POP DIRECTIONAL ISOLATE, in text and in
    attributes alike, so it keeps its own direction without pulling the numbers and words beside it into it.
    """
    if not isinstance(value, str) or isinstance(value, Markup):
        return value
    if not any(unicodedata.bidirectional(ch) in ("R", "AL") or ch in BIDI_CONTROLS for ch in value):
        return value
    text = visible_controls(value)
    return f"\u2068{text}\u2069" if any(unicodedata.bidirectional(ch) in ("R", "AL") for ch in text) else text
