"""Identity-term swaps (fairprompt.swaps): the built-in identity_toxicity phrases and user files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fairprompt.datasets.identity_toxicity import IDENTITY_PHRASES, generate
from fairprompt.errors import FairpromptError
from fairprompt.swaps import SwapTerms


def test_built_in_swaps_replace_each_identity_by_another_groups_phrase() -> None:
    terms = SwapTerms.load("identity_toxicity")
    assert dict(terms.groups) == {g: tuple(p) for g, p in IDENTITY_PHRASES.items()}
    texts = ["A muslim person came in.", "I met someone at the gym.", "Nothing to see here."]
    swapped, changed = terms.swap(texts, seed=0)
    assert changed.tolist() == [True, True, False] and swapped[2] == texts[2]
    assert swapped[0][0].isupper()  # the leading capital is kept
    assert "muslim" not in swapped[0].lower() and swapped[0].endswith(" came in.")
    assert "someone" not in swapped[1] and "a person" not in swapped[1]  # never the same group's other phrase
    assert terms.swap(texts, seed=0)[0] == swapped  # seeded
    frame = generate(seed=0).head(400)
    out, mask = terms.swap(frame["text"].tolist(), seed=1)
    assert mask.all()
    phrase = {p: g for g, ps in IDENTITY_PHRASES.items() for p in ps}
    for before, after, group in zip(frame["text"], out, frame["identity"], strict=True):
        found = [p for p in sorted(phrase, key=len, reverse=True) if p in after.lower()]
        assert found and phrase[found[0]] != group, (before, after)


def test_swap_files_and_their_errors(tmp_path: Path) -> None:
    good = tmp_path / "terms.yaml"
    good.write_text("she: [a woman, she]\nhe: [a man]\n")
    terms = SwapTerms.load(str(good))
    swapped, changed = terms.swap(["She is a woman.", "a mandolin"], seed=0)
    assert swapped[0] == "A man is a man." and changed.tolist() == [True, False]  # whole words only
    (tmp_path / "terms.json").write_text('{"x": ["ex"], "y": ["why"]}')
    assert SwapTerms.load(str(tmp_path / "terms.json")).swap(["ex"], seed=0)[0] == ["why"]
    with pytest.raises(FairpromptError, match=r"neither built in \(identity_toxicity\).*did you mean"):
        SwapTerms.load("identity_toxicty")
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(FairpromptError, match="holds a list; give a mapping"):
        SwapTerms.load(str(tmp_path / "list.yaml"))
    (tmp_path / "one.yaml").write_text("a: [x]\n")
    with pytest.raises(FairpromptError, match="name 1 group"):
        SwapTerms.load(str(tmp_path / "one.yaml"))
    (tmp_path / "empty.yaml").write_text("a: [x]\nb: []\n")
    with pytest.raises(FairpromptError, match="group 'b' needs a list of non-empty phrases"):
        SwapTerms.load(str(tmp_path / "empty.yaml"))
    assert np.asarray(terms.swap([], seed=0)[1]).size == 0
