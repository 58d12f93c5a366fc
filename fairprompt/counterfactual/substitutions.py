"""Substitution lists: identity words of each group of a category, aligned by position, and the swaps they make.

A list file maps ``{category: {group: [terms]}}`` (the built-in ``gender``, ``race`` and ``religion`` in
``fairprompt/counterfactual/lists/``, or a user's YAML file of the same shape), with two reserved keys:
``sources: {category: where the list comes from}`` (required for each category) and ``ambiguous: {category:
[terms]}`` (words whose swap has no single answer, such as English "her", which becomes "him" or "his").

:meth:`Substitutions.variants` reads each text once per category: a text naming terms of exactly one group gets one
variant per other group, each term replaced by the term at the same position in that group's list (whole words,
case-insensitive, the longest term first, the case of the original kept, "a"/"an" agreed with the new word).  A
text with no term, with terms of several groups, or with an ambiguous term is not swapped, and is counted.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from fairprompt.errors import FairpromptError, did_you_mean

BUILT_IN: tuple[str, ...] = ("gender", "race", "religion")
RESERVED = ("sources", "ambiguous")


@dataclass(frozen=True)
class Category:
    """One category's groups (aligned term lists), its ambiguous terms and its source."""

    name: str
    groups: Mapping[str, tuple[str, ...]]
    ambiguous: tuple[str, ...]
    source: str


@dataclass(frozen=True)
class Variant:
    """One swapped text: the row it came from, its category, the group it named and the group swapped in."""

    row: int
    category: str
    source_group: str
    target_group: str
    text: str


@dataclass
class SwapCounts:
    """What happened to the texts of one category."""

    swapped: int = 0
    no_term: int = 0
    several_groups: int = 0
    ambiguous: int = 0
    ambiguous_terms: dict[str, int] = field(default_factory=dict)


def _case_like(word: str, new: str) -> str:
    if word.isupper() and len(word) > 1:
        return new.upper()
    if word[:1].isupper():
        return " ".join(w[:1].upper() + w[1:] for w in new.split(" "))
    return new


_ARTICLE = re.compile(r"\b(a|an)(\s+)$", re.IGNORECASE)


def _vowel_sound(word: str) -> bool:
    """Whether ``word`` starts with a vowel sound, by its spelling: a vowel letter, except "eu", "uni", "use" and
    "one" (a European, a unit), and "hon"/"hour" (an honest person)."""
    w = word.lower()
    if w.startswith(("eu", "uni", "use", "usu", "one", "once")):
        return False
    return w[:1] in "aeiou" or w.startswith(("hon", "hour", "heir"))


def _with_article(prefix: str, new: str) -> str:
    """``prefix`` with a trailing "a"/"an" agreed with ``new`` (by its first letter: a vowel takes "an")."""
    match = _ARTICLE.search(prefix)
    if match is None:
        return prefix
    article = "an" if _vowel_sound(new) else "a"
    article = article.capitalize() if match.group(1)[:1].isupper() else article
    return prefix[:match.start()] + article + match.group(2)


@dataclass(frozen=True)
class Substitutions:
    """Categories of aligned identity terms, and where they came from (module docstring)."""

    categories: tuple[Category, ...]
    origin: str

    @classmethod
    def load(cls, names_or_path: str | Sequence[str], *, base: Path | None = None) -> Substitutions:
        """Built-in lists by name (``[gender, race, religion]``), or a YAML file (relative to ``base``)."""
        if isinstance(names_or_path, str) and names_or_path not in BUILT_IN:
            path = Path(names_or_path) if base is None or Path(names_or_path).is_absolute() else base / names_or_path
            if not path.is_file():
                raise FairpromptError(f"substitutions {names_or_path!r} are neither built in ({', '.join(BUILT_IN)})"
                                      f"{did_you_mean(names_or_path, BUILT_IN)} nor a file; give a YAML file of "
                                      "{category: {group: [terms]}} with sources")
            return cls(categories=_read(path), origin=f"'{path}'")
        names = [names_or_path] if isinstance(names_or_path, str) else list(names_or_path)
        if not names:
            raise FairpromptError(f"substitutions is an empty list; name built-in lists ({', '.join(BUILT_IN)}) or a "
                                  "file")
        categories: list[Category] = []
        repeated = sorted({n for n in names if names.count(n) > 1}, key=str)
        if repeated:
            raise FairpromptError(f"substitutions names {repeated[0]!r} twice; list each built-in list once")
        for name in names:
            if name not in BUILT_IN:
                raise FairpromptError(f"substitutions {name!r} is not a built-in list ({', '.join(BUILT_IN)})"
                                      f"{did_you_mean(str(name), BUILT_IN)}; a file goes alone, not in a list")
            lists = resources.files("fairprompt.counterfactual") / "lists" / f"{name}.yaml"
            categories += _read(Path(str(lists)))
        return cls(categories=tuple(categories), origin="built-in " + ", ".join(names))

    def variants(self, texts: Sequence[str]) -> tuple[list[Variant], dict[str, SwapCounts]]:
        """Every text's swapped variants, category by category, and the counts of what was and was not swapped."""
        out: list[Variant] = []
        counts: dict[str, SwapCounts] = {}
        for category in self.categories:
            count = counts.setdefault(category.name, SwapCounts())
            owner = {t.lower(): (g, i) for g, terms in category.groups.items() for i, t in enumerate(terms)}
            words = sorted(set(owner) | {a.lower() for a in category.ambiguous}, key=len, reverse=True)
            pattern = re.compile(r"\b(" + "|".join(re.escape(w) for w in words) + r")\b", re.IGNORECASE)
            ambiguous = {a.lower() for a in category.ambiguous}
            for row, text in enumerate(texts):
                found = [m for m in pattern.finditer(str(text))]
                hits = [m.group(0).lower() for m in found]
                if not found:
                    count.no_term += 1
                    continue
                unclear = [h for h in hits if h in ambiguous]
                if unclear:
                    count.ambiguous += 1
                    for h in unclear:
                        count.ambiguous_terms[h] = count.ambiguous_terms.get(h, 0) + 1
                    continue
                named = {owner[h][0] for h in hits}
                if len(named) > 1:
                    count.several_groups += 1
                    continue
                count.swapped += 1
                (source,) = named
                for target in category.groups:
                    if target != source:
                        out.append(Variant(row, category.name, source, target,
                                           _replace(str(text), found, owner, category.groups[target])))
        return out, counts

    def describe(self) -> dict[str, Any]:
        return {"origin": self.origin, "categories": [
            {"name": c.name, "groups": {g: list(t) for g, t in c.groups.items()}, "ambiguous": list(c.ambiguous),
             "source": c.source} for c in self.categories]}


def _replace(text: str, found: Sequence[re.Match[str]], owner: Mapping[str, tuple[str, int]],
             target: Sequence[str]) -> str:
    pieces, last = [], 0
    for m in found:
        new = _case_like(m.group(0), target[owner[m.group(0).lower()][1]])
        pieces.append(_with_article(text[last:m.start()], new))
        pieces.append(new)
        last = m.end()
    return "".join(pieces) + text[last:]


def _read(path: Path) -> tuple[Category, ...]:
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise FairpromptError(f"substitutions file '{path}' cannot be read ({str(error).splitlines()[0]}); give a "
                              "YAML file of {category: {group: [terms]}}") from None
    if not isinstance(data, Mapping):
        raise FairpromptError(f"substitutions file '{path}' holds a {type(data).__name__}; give a mapping of "
                              "{category: {group: [terms]}} with sources")
    sources = data.get("sources") or {}
    ambiguous = data.get("ambiguous") or {}
    if not isinstance(sources, Mapping) or not isinstance(ambiguous, Mapping):
        raise FairpromptError(f"substitutions file '{path}': 'sources' and 'ambiguous' map each category to its "
                              "source text and its list of ambiguous terms")
    categories = []
    for name, groups in data.items():
        if name in RESERVED:
            continue
        where = f"substitutions file '{path}', category {name!r}"
        if not isinstance(groups, Mapping) or len(groups) < 2:
            raise FairpromptError(f"{where} needs two groups or more, each with its list of terms")
        lists: dict[str, tuple[str, ...]] = {}
        for group, terms in groups.items():
            if (not isinstance(terms, list) or not terms
                    or not all(isinstance(t, str) and t.strip() for t in terms)):
                raise FairpromptError(f"{where}: group {group!r} needs a list of non-empty terms")
            lists[str(group)] = tuple(t.strip() for t in terms)
        lengths = {g: len(t) for g, t in lists.items()}
        if len(set(lengths.values())) > 1:
            raise FairpromptError(f"{where}: the groups' lists are aligned by position, so they need the same length "
                                  f"(got {lengths})")
        seen: dict[str, str] = {}
        for group, terms in lists.items():
            for t in terms:
                if t.lower() in seen and seen[t.lower()] != group:
                    raise FairpromptError(f"{where}: the term {t!r} is in groups {seen[t.lower()]!r} and {group!r}; "
                                          "list it under 'ambiguous' instead")
                seen[t.lower()] = group
        if not isinstance(sources.get(name), str) or not sources[name].strip():
            raise FairpromptError(f"{where} has no source; add sources: {{{name}: where the list comes from}}")
        unclear = ambiguous.get(name) or []
        if not isinstance(unclear, list) or not all(isinstance(t, str) and t.strip() for t in unclear):
            raise FairpromptError(f"{where}: ambiguous.{name} is a list of terms")
        categories.append(Category(name=str(name), groups=lists, ambiguous=tuple(t.strip() for t in unclear),
                                   source=" ".join(sources[name].split())))
    if not categories:
        raise FairpromptError(f"substitutions file '{path}' names no category; give {{category: {{group: [terms]}}}}")
    return tuple(categories)


__all__ = ["BUILT_IN", "Category", "Substitutions", "SwapCounts", "Variant"]
