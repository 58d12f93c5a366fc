"""Counterfactual audits: the substitution lists (built in and a user's), the swap rules (alignment, case, articles,
ambiguous terms, several groups, no term), the paired metrics, and the bad inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from fairprompt.counterfactual import Substitutions, counterfactual_audit
from fairprompt.errors import FairpromptError


@pytest.fixture(scope="module")
def built_in() -> Substitutions:
    return Substitutions.load(["gender", "race", "religion"])


def test_the_built_in_lists_are_aligned_and_sourced(built_in: Substitutions) -> None:
    assert [c.name for c in built_in.categories] == ["gender", "race", "religion"]
    for c in built_in.categories:
        assert len({len(t) for t in c.groups.values()}) == 1 and len(c.groups) >= 2 and c.source
    gender = built_in.categories[0]
    assert gender.groups["female"][:5] == ("woman", "women", "girl", "girls", "she")
    assert set(gender.ambiguous) == {"her", "hers", "his", "him"}


def test_swap_rules(built_in: Substitutions) -> None:
    texts = ["She is a Black woman and an engineer.", "I met an asian person at the mosque.",
             "His mother is a Muslim.", "The weather is nice.", "A man and a woman walked.", "WOMEN vote."]
    variants, counts = built_in.variants(texts)
    by = {(v.row, v.category, v.target_group): v.text for v in variants}
    assert by[(0, "gender", "male")] == "He is a Black man and an engineer."          # every term, case kept
    assert by[(0, "race", "asian")] == "She is an Asian woman and an engineer."       # "a" -> "an"
    assert by[(1, "race", "white")] == "I met a white person at the mosque."          # "an" -> "a"
    assert by[(1, "race", "native_american")] == "I met a native american person at the mosque."
    assert by[(5, "gender", "male")] == "MEN vote."
    assert (2, "gender", "male") not in by and counts["gender"].ambiguous == 1        # "his": skipped, counted
    assert counts["gender"].ambiguous_terms == {"his": 1}
    assert (4, "gender", "male") not in by and counts["gender"].several_groups == 1   # man and woman: skipped
    assert counts["gender"].no_term == 2 and counts["gender"].swapped == 2
    assert sum(1 for v in variants if v.row == 0 and v.category == "race") == 4        # one variant per other group
    assert all(v.source_group != v.target_group for v in variants)


def test_a_users_file(tmp_path: Path) -> None:
    path = tmp_path / "names.yaml"
    path.write_text(yaml.safe_dump({"sources": {"names": "my list"},
                                    "names": {"f": ["Emily", "Lakisha"], "m": ["Greg", "Jamal"]}}))
    subs = Substitutions.load("names.yaml", base=tmp_path)
    variants, _ = subs.variants(["Lakisha applied.", "Greg and Jamal applied."])
    assert [v.text for v in variants] == ["Jamal applied.", "Emily and Lakisha applied."]


@pytest.mark.parametrize(("content", "fragment"), [
    ("[1, 2]", "holds a list"),
    ("sources: {g: s}\ng: {a: [x]}", "needs two groups or more"),
    ("sources: {g: s}\ng: {a: [x, y], b: [z]}", "need the same length"),
    ("sources: {g: s}\ng: {a: [x], b: [x]}", "is in groups 'a' and 'b'"),
    ("g: {a: [x], b: [y]}", "has no source"),
    ("sources: {g: s}\ng: {a: [x], b: ['']}", "needs a list of non-empty terms"),
    ("sources: {g: s}", "names no category"),
    ("g: [unclosed", "cannot be read"),
])
def test_malformed_files(tmp_path: Path, content: str, fragment: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    with pytest.raises(FairpromptError, match="bad.yaml") as error:
        Substitutions.load(str(path))
    assert fragment in str(error.value) and "\n" not in str(error.value)


def test_articles_follow_the_sound(built_in: Substitutions) -> None:
    variants, _ = built_in.variants(["He is an African American engineer."])
    by = {v.target_group: v.text for v in variants}
    assert by["white"] == "He is a European American engineer." and by["asian"] == "He is an Asian American engineer."


def test_unknown_lists() -> None:
    with pytest.raises(FairpromptError, match="names 'gender' twice"):
        Substitutions.load(["gender", "race", "gender"])
    with pytest.raises(FairpromptError, match="did you mean 'gender'"):
        Substitutions.load(["gendr"])
    with pytest.raises(FairpromptError, match="neither built in"):
        Substitutions.load("nowhere.yaml")


def _keyword_score(texts: list[str]) -> np.ndarray:
    """A transparent scorer: +1 for each mention of 'woman' or 'she', so gender swaps move it and nothing else does."""
    return np.array([t.lower().split().count("woman") + t.lower().split().count("she") - 0.5 for t in texts])


def test_the_paired_metrics(built_in: Substitutions) -> None:
    texts = ["a woman spoke", "a man spoke", "she left", "he left", "a muslim spoke", "nothing here"] * 10
    result = counterfactual_audit(texts=texts, score=_keyword_score, threshold=0.0, substitutions=built_in,
                                  n_boot=200)
    female_to_male = result.pair("gender", "female", "male")
    male_to_female = result.pair("gender", "male", "female")
    assert female_to_male.rows == male_to_female.rows == 20
    assert female_to_male.flip_rate.value == 1.0 and female_to_male.mean_change.value == -1.0
    assert female_to_male.rate_original.value == 1.0 and female_to_male.rate_swapped.value == 0.0
    assert male_to_female.mean_change.value == 1.0 and male_to_female.largest_change == 1.0
    religion = [p for p in result.pairs if p.category == "religion"]
    assert len(religion) == 6 and all(p.flip_rate.value == 0.0 and p.flip_rate.ci_high == 0.0 for p in religion)
    assert result.rows_read == 60 and result.counts["gender"].no_term == 20
    assert result.variants == 40 + 60
    assert result.flip_rate() == pytest.approx(40 / 100)
    record = result.to_dict()
    assert [p["target_group"] for p in record["pairs"][:2]] == ["male", "female"]
    assert record["counts"]["gender"]["swapped"] == 40 and record["flip_rate"] == pytest.approx(0.4)


def test_max_rows_and_no_match(built_in: Substitutions) -> None:
    texts = [f"a woman number {i}" for i in range(50)]
    result = counterfactual_audit(texts=texts, score=_keyword_score, threshold=0.0, substitutions=built_in,
                                  max_rows=7, n_boot=10)
    assert result.rows_read == 7 and result.rows_available == 50
    with pytest.raises(FairpromptError, match="match no row of the 3 texts"):
        counterfactual_audit(texts=["x", "y", "z"], score=_keyword_score, threshold=0.0, substitutions=built_in)
    with pytest.raises(FairpromptError, match="max_rows is 0"):
        counterfactual_audit(texts=texts, score=_keyword_score, threshold=0.0, substitutions=built_in, max_rows=0)
