"""The generated identity_toxicity task: determinism, splits, the shortcut, disjointness, load() roles, errors."""

from __future__ import annotations

import re
import time

import numpy as np
import pandas as pd
import pytest

from fairprompt import datasets
from fairprompt.datasets import identity_toxicity as it
from fairprompt.datasets.embedded import GENERATED, frame_sha256
from fairprompt.errors import FairpromptError

GROUPS = (*it.IDENTITIES, "none")


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return it.generate()


@pytest.fixture(scope="module")
def large() -> pd.DataFrame:
    """More training rows, for tighter rate estimates."""
    return it.generate(n_train=20_000, n_validation=2_000, n_test_per_cell=8, seed=3)


def _error(**options: object) -> str:
    with pytest.raises(FairpromptError) as info:
        datasets.load("identity_toxicity", options=options)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_deterministic_and_fast(frame: pd.DataFrame) -> None:
    start = time.perf_counter()
    again = it.generate()
    assert time.perf_counter() - start < 1.0
    assert frame_sha256(again) == frame_sha256(frame) == GENERATED["identity_toxicity"].info.sha256
    pd.testing.assert_frame_equal(again, frame)
    other = it.generate(seed=1)
    assert frame_sha256(other) != frame_sha256(frame)
    assert (other["text"] != frame["text"]).mean() > 0.5


def test_columns_and_split_sizes(frame: pd.DataFrame) -> None:
    assert tuple(frame.columns) == it.COLUMNS
    assert frame["split"].value_counts().to_dict() == {"train": 4000, "test": 2176, "validation": 1000}
    assert list(frame["split"].drop_duplicates()) == ["train", "validation", "test"]
    assert set(frame["toxic"]) == {0, 1} and frame["toxic"].dtype == np.int64
    assert set(frame["identity"]) == set(GROUPS)
    expected = {term: it.CATEGORIES.get(term, "none") for term in GROUPS}
    assert (frame["identity_category"] == frame["identity"].map(expected)).all()
    assert set(frame["identity_category"]) == {"gender", "religion", "race", "orientation", "none"}
    small = it.generate(n_train=10, n_validation=0, n_test_per_cell=1)
    assert small["split"].value_counts().to_dict() == {"test": 34, "train": 10}


def test_texts_mention_their_identity(frame: pd.DataFrame) -> None:
    for term in it.IDENTITIES:
        texts = frame.loc[frame["identity"] == term, "text"].str.lower()
        assert texts.str.contains(rf"\b{term}\b").all(), term
    none = frame.loc[frame["identity"] == "none", "text"].str.lower()
    pattern = r"\b(?:" + "|".join(it.IDENTITIES) + r")\b"
    assert not none.str.contains(pattern).any()
    lengths = frame["text"].map(lambda t: len(it.tokens(t)))
    assert lengths.between(6, 20).all()


def test_test_split_is_balanced_and_clean(frame: pd.DataFrame) -> None:
    test = frame[frame["split"] == "test"]
    cells = test.groupby(["identity", "toxic"]).size()
    assert len(cells) == len(GROUPS) * 2 and (cells == 64).all()
    assert (test["flipped"] == 0).all()
    assert (test["cue"] == test["toxic"].map({0: "friendly", 1: "toxic"})).all()


def test_spurious_correlation_in_train(large: pd.DataFrame) -> None:
    spurious, noise = 0.8, 0.05
    train = large[large["split"] == "train"]
    shortcut = train["identity"].isin(it.DEFAULT_SHORTCUT)
    clean = train["toxic"] ^ train["flipped"]
    assert clean[shortcut].mean() == pytest.approx(spurious, abs=0.02)
    assert clean[~shortcut].mean() == pytest.approx(0.5, abs=0.02)
    observed = spurious * (1 - noise) + (1 - spurious) * noise  # 0.77, as documented
    assert train.loc[shortcut, "toxic"].mean() == pytest.approx(observed, abs=0.02)
    per_identity = train.groupby("identity")["toxic"].mean()
    for term in GROUPS:
        target = observed if term in it.DEFAULT_SHORTCUT else 0.5
        assert per_identity[term] == pytest.approx(target, abs=0.07), term
    custom = it.generate(n_train=6000, spurious=0.3, shortcut_identities=["woman"], label_noise=0.0, n_test_per_cell=1)
    custom = custom[custom["split"] == "train"]
    assert custom.loc[custom["identity"] == "woman", "toxic"].mean() == pytest.approx(0.3, abs=0.08)
    assert custom.loc[custom["identity"] == "muslim", "toxic"].mean() == pytest.approx(0.5, abs=0.08)


def test_label_noise_and_cues(large: pd.DataFrame) -> None:
    biased = large[large["split"] != "test"]
    assert biased["flipped"].mean() == pytest.approx(0.05, abs=0.01)
    assert biased["cue"].eq("neutral").mean() == pytest.approx(0.2, abs=0.015)
    stated = biased[biased["cue"] != "neutral"]
    clean = stated["cue"].map({"friendly": 0, "toxic": 1})
    assert ((stated["toxic"] != clean) == stated["flipped"].astype(bool)).all()
    noiseless = it.generate(label_noise=0.0, ambiguous=0.0, n_test_per_cell=1)
    assert (noiseless["flipped"] == 0).all() and (noiseless["cue"] != "neutral").all()
    assert (noiseless["toxic"] == noiseless["cue"].map({"friendly": 0, "toxic": 1})).all()


def test_validation_is_drawn_like_train(large: pd.DataFrame) -> None:
    validation = large[large["split"] == "validation"]
    assert set(validation["template"]) == set(it.template_family("train"))
    shortcut = validation["identity"].isin(it.DEFAULT_SHORTCUT)
    assert validation.loc[shortcut, "toxic"].mean() > validation.loc[~shortcut, "toxic"].mean() + 0.15


def _content_words(texts: pd.Series) -> set[str]:
    identity_words = {w for phrases in it.IDENTITY_PHRASES.values() for p in phrases for w in it.tokens(p)}
    words = {w for text in texts for w in it.tokens(text)}
    return words - it.FUNCTION_WORDS - identity_words


def test_templates_and_vocabulary_are_disjoint(frame: pd.DataFrame) -> None:
    test = frame[frame["split"] == "test"]
    biased = frame[frame["split"] != "test"]
    assert set(test["template"]) == set(it.template_family("test"))
    assert set(biased["template"]) == set(it.template_family("train"))
    assert not set(it.template_family("test")) & set(it.template_family("train"))
    # the word lists themselves: no filler or template word is shared
    def family_words(family: str) -> set[str]:
        words = set()
        for fam, _, pattern in it.TEMPLATES.values():
            if fam == family:
                words |= set(it.tokens(re.sub(r"\{\w+\}", " ", pattern)))
        for (fam, _), (friendly, toxic) in it.VOCABULARY.items():
            if fam == family:
                words |= {w for filler in friendly + toxic for w in it.tokens(filler)}
        if family == "train":
            words |= {w for fillers in it.NEUTRAL.values() for filler in fillers for w in it.tokens(filler)}
        return words - it.FUNCTION_WORDS
    assert not family_words("train") & family_words("test")
    # and the generated texts: beyond identity phrases and function words, nothing overlaps
    assert not _content_words(test["text"]) & _content_words(biased["text"])
    for family in ("train", "test"):
        assert len(family_words(family)) > 80


def test_load_roles_and_options(frame: pd.DataFrame) -> None:
    ds = datasets.load("identity_toxicity")
    assert (ds.label, ds.favourable_label, ds.sensitive) == ("toxic", 0, ("identity", "identity_category"))
    assert ds.source == "generated:identity_toxicity"
    assert ds.sha256 == frame_sha256(frame) == GENERATED["identity_toxicity"].info.sha256
    pd.testing.assert_frame_equal(ds.frame, frame)
    np.testing.assert_array_equal(ds.y, (frame["toxic"] == 0).astype(int))  # y = 1: not toxic (favourable)
    assert "spurious=0.8" in ds.notes and "seed=0" in ds.notes
    info = {i.name: i for i in datasets.available()}["identity_toxicity"]
    assert info.kind == "generated" and (info.rows, info.columns) == ds.frame.shape
    assert "identity_toxicity" in datasets.GENERATED_NAMES and "identity_toxicity" not in datasets.NAMES
    tuned = datasets.load("identity_toxicity", options={"spurious": 0.9, "seed": 2}, sensitive="identity")
    assert tuned.sensitive == ("identity",) and "spurious=0.9" in tuned.notes and tuned.sha256 != ds.sha256
    pd.testing.assert_frame_equal(tuned.frame, it.generate(spurious=0.9, seed=2))


def test_bad_options_name_the_option() -> None:
    assert "'spurios'" in (m := _error(spurios=0.9)) and "did you mean 'spurious'" in m
    assert "'spurious'" in _error(spurious=1.5)
    assert "'label_noise'" in _error(label_noise=0.5)
    assert "'n_train'" in _error(n_train=-1) and "'n_train'" in _error(n_train=2.5)
    assert "'n_test_per_cell'" in _error(n_test_per_cell=0)
    assert "'seed'" in _error(seed="zero")
    assert "did you mean 'muslim'" in _error(shortcut_identities=["muslm"])
    assert "not the string" in _error(shortcut_identities="gay")
    with pytest.raises(FairpromptError, match=r"'adult'.*not a generated data set"):
        datasets.load("adult", options={"spurious": 0.9})
    with pytest.raises(FairpromptError, match=r"did you mean 'identity_toxicity'"):
        datasets.load("identity_toxicty")


def test_shortcut_is_learned_by_a_bag_of_words() -> None:
    """Learnable in-distribution; on the unseen test vocabulary a BOW model falls back to identity words.

    So its accuracy on test is near chance (expected: it has never seen a test
    filler), while its flagging rate of NON-toxic test comments (the classic
    FPR, fairprompt's FNR) is clearly higher for the shortcut identities.
    """
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression

    data = it.generate(seed=0)
    train, validation, test = (data[data["split"] == s] for s in ("train", "validation", "test"))
    vectorizer = CountVectorizer()
    model = LogisticRegression(max_iter=2000).fit(vectorizer.fit_transform(train["text"]), train["toxic"])
    stated = validation[validation["cue"] != "neutral"]
    clean = stated["cue"].map({"friendly": 0, "toxic": 1}).to_numpy()
    assert (model.predict(vectorizer.transform(stated["text"])) == clean).mean() > 0.95
    flagged = model.predict(vectorizer.transform(test["text"]))
    non_toxic = (test["toxic"] == 0).to_numpy()
    shortcut = test["identity"].isin(it.DEFAULT_SHORTCUT).to_numpy()
    fpr_shortcut, fpr_other = flagged[non_toxic & shortcut].mean(), flagged[non_toxic & ~shortcut].mean()
    assert fpr_shortcut > fpr_other + 0.2


# --------------------------------------------------------------------------- the final split


def test_final_split_is_fresh_balanced_and_changes_no_other_row(frame: pd.DataFrame) -> None:
    with_final = it.generate(n_final_per_cell=100)
    pd.testing.assert_frame_equal(with_final.iloc[:len(frame)], frame)  # train, validation and test rows unchanged
    final = with_final.iloc[len(frame):]
    assert set(final["split"]) == {"final"} and len(final) == len(GROUPS) * 2 * 100
    assert (final.groupby(["identity", "toxic"]).size() == 100).all()
    assert (final["flipped"] == 0).all() and (final["cue"] == final["toxic"].map({0: "friendly", 1: "toxic"})).all()
    assert set(final["template"]) == set(it.template_family("final"))
    # fresh comments: none repeats, none is a train, validation or test comment, and no content word is shared
    assert not final["text"].duplicated().any()
    assert not set(final["text"]) & set(frame["text"])
    assert not _content_words(final["text"]) & _content_words(frame["text"])
    for term in it.IDENTITIES:
        assert final.loc[final["identity"] == term, "text"].str.lower().str.contains(rf"\b{term}\b").all(), term
    # seeded
    pd.testing.assert_frame_equal(it.generate(n_final_per_cell=100), with_final)
    other = it.generate(n_final_per_cell=100, seed=1)
    assert (other.loc[other["split"] == "final", "text"].to_numpy() != final["text"].to_numpy()).mean() > 0.5


def test_final_split_size_is_bounded_by_distinct_comments() -> None:
    capacity = it.final_capacity()
    assert capacity >= 1000  # 16x the test split's 64 harmless comments per identity
    full = it.generate(n_train=10, n_validation=0, n_test_per_cell=1, n_final_per_cell=capacity)
    assert full.loc[full["split"] == "final", "text"].is_unique
    # every final word list in use, and still no content word of train, validation or test
    assert not _content_words(full.loc[full["split"] == "final", "text"]) & _content_words(it.generate()["text"])
    message = _error(n_final_per_cell=capacity + 1)
    assert "'n_final_per_cell'" in message and f"n_final_per_cell={capacity} or less" in message
    assert "'n_final_per_cell'" in _error(n_final_per_cell=-1)


def test_the_spec_holds_out_a_final_split_and_keeps_its_task_prompt() -> None:
    """audits/identity_toxicity.yaml: the final rows are disjoint from every other split, by row and by text, and the
    task prompt's cache key (train and validation rows) is the one without a final split (the shipped prompt's)."""
    from pathlib import Path

    from fairprompt.spec import load_spec
    from fairprompt.tasks import load_task

    spec = load_spec(Path("audits/identity_toxicity.yaml"))
    task = load_task(spec)
    s = task.splits
    assert (s.train.size, s.validation.size, s.test.size, s.final.size) == (4000, 1000, 2176, 17 * 2 * 512)
    others = np.concatenate([s.train, s.validation, s.test])
    assert not np.intersect1d(s.final, others).size
    assert not set(task.pick(s.final)) & set(task.pick(others))
    plain = spec.model_copy(update={"data": spec.data.model_copy(
        update={"options": {k: v for k, v in spec.data.options.items() if k != "n_final_per_cell"}})})
    without = load_task(plain)
    assert without.splits.final.size == 0
    for name in ("train", "validation", "test"):
        assert np.array_equal(getattr(without.splits, name), getattr(s, name))
    assert without.task_prompt_key() == task.task_prompt_key()


def test_a_final_split_too_large_for_the_generator_is_one_line(tmp_path) -> None:
    from factories import assert_user_error, run_cli, write_spec

    spec = write_spec(tmp_path, {"name": "t", "data": {"dataset": "identity_toxicity", "options": {"n_final_per_cell": 5000}},
                                 "model": {"kind": "frozen_text", "text": {"column": "text"}, "splits": {"column": "split"}},
                                 "audit": {"sensitive": ["identity"]}})
    code, _, err = run_cli("audit", str(spec), "--out", str(tmp_path / "out"))
    assert_user_error(code, err, "'n_final_per_cell'", f"at most {it.final_capacity():,}")
    assert not (tmp_path / "out").exists()
