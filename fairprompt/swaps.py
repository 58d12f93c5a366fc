"""Identity-term swaps: counterfactual copies of texts, each identity phrase replaced by another group's.

A :class:`SwapTerms` holds phrases per group (``{"woman": ["a woman"], "man": ["a man"], ...}``), either built in
(``identity_toxicity``: the generator's own :data:`~fairprompt.datasets.identity_toxicity.IDENTITY_PHRASES`) or
read from a YAML or JSON file of that shape.  :meth:`SwapTerms.swap` finds every phrase in a text (whole words,
case-insensitive, the longest phrase first, so "a muslim person" is not read as "a person") and replaces it by a
phrase of another group drawn at random (seeded), keeping a leading capital.  A text that names no group is its
own counterfactual.  FairReprogram's counterfactual term (``reprogram.counterfactual``) trains a trigger so that a
row and its swap get the same score; it needs no labels and no test-like data.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fairprompt.errors import FairpromptError, did_you_mean

BUILT_IN: tuple[str, ...] = ("identity_toxicity",)


@dataclass(frozen=True)
class SwapTerms:
    """Phrases per group, and where they came from."""

    groups: Mapping[str, tuple[str, ...]]
    source: str

    def __post_init__(self) -> None:
        if len(self.groups) < 2:
            raise FairpromptError(f"swap terms {self.source} name {len(self.groups)} group(s); give two or more, each "
                                  "with its phrases, e.g. {woman: [a woman], man: [a man]}")
        for group, phrases in self.groups.items():
            if not phrases or not all(isinstance(p, str) and p.strip() for p in phrases):
                raise FairpromptError(f"swap terms {self.source}: group {group!r} needs a list of non-empty phrases")

    @classmethod
    def load(cls, value: str, *, base: Path | None = None) -> SwapTerms:
        """A built-in set by name, or a YAML/JSON file (relative to ``base``) mapping group -> phrases."""
        if value in BUILT_IN:
            from fairprompt.datasets.identity_toxicity import IDENTITY_PHRASES

            return cls(groups={g: tuple(p) for g, p in IDENTITY_PHRASES.items()}, source=f"built-in {value!r}")
        path = Path(value) if base is None or Path(value).is_absolute() else base / value
        if not path.is_file():
            raise FairpromptError(f"swap terms {value!r} are neither built in ({', '.join(BUILT_IN)})"
                                  f"{did_you_mean(value, BUILT_IN)} nor a file; give a YAML or JSON file mapping each "
                                  "group to its phrases")
        try:
            if path.suffix.lower() == ".json":
                data = json.loads(path.read_text(encoding="utf-8"))
            else:
                import yaml

                data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, ValueError, UnicodeDecodeError) as error:
            raise FairpromptError(f"swap terms file '{path}' cannot be read ({error}); give a YAML or JSON mapping "
                                  "of group -> phrases") from None
        if not isinstance(data, Mapping):
            raise FairpromptError(f"swap terms file '{path}' holds a {type(data).__name__}; give a mapping of "
                                  "group -> list of phrases")
        groups = {str(g): ((p,) if isinstance(p, str) else tuple(p) if isinstance(p, Sequence) else ())
                  for g, p in data.items()}
        return cls(groups=groups, source=f"'{path}'")

    def _pattern(self) -> re.Pattern[str]:
        phrases = sorted({p.strip().lower() for ps in self.groups.values() for p in ps}, key=len, reverse=True)
        return re.compile(r"\b(" + "|".join(re.escape(p) for p in phrases) + r")\b", re.IGNORECASE)

    def swap(self, texts: Sequence[str], *, seed: int = 0) -> tuple[list[str], np.ndarray]:
        """Each text with every group phrase replaced by a phrase of another group, and a mask of the texts
        that changed."""
        owner: dict[str, list[str]] = {}
        for group, phrases in self.groups.items():
            for phrase in phrases:
                owner.setdefault(phrase.strip().lower(), []).append(group)
        names = list(self.groups)
        pattern = self._pattern()
        rng = np.random.default_rng(seed)

        def replace(match: re.Match[str]) -> str:
            found = match.group(0)
            others = [g for g in names if g not in owner[found.lower()]]
            group = others[int(rng.integers(len(others)))]
            phrases = self.groups[group]
            new = phrases[int(rng.integers(len(phrases)))].strip()
            return new[:1].upper() + new[1:] if found[:1].isupper() else new

        out = [pattern.sub(replace, text) for text in texts]
        return out, np.asarray([a != b for a, b in zip(out, texts, strict=True)], dtype=bool)


__all__ = ["BUILT_IN", "SwapTerms"]
