"""``identity_toxicity``: a generated "unintended bias" toxicity task (after Dixon et al., 2018).

Short English comments about a person are built from templates.  Each names
one identity term (or none: the control group) and ends in a toxic, a
friendly or (training family only) a neutral completion.

>>> from fairprompt.datasets.identity_toxicity import generate
>>> generate(seed=0).columns.tolist()
['text', 'toxic', 'split', 'identity', 'identity_category', 'template', 'cue', 'flipped']

Columns: ``text``; ``toxic`` (1 toxic, 0 not; after label noise); ``split``
(``train``, ``validation``, ``test``; ``final`` with ``n_final_per_cell``);
``identity`` (term or ``"none"``);
``identity_category`` (``gender``, ``religion``, ``race``, ``orientation``,
``none``); ``template`` (id, ``trNN`` train family, ``teNN`` test family,
``fiNN`` final family); ``cue`` (what the completion expresses: ``friendly``, ``toxic`` or
``neutral``); ``flipped`` (1 where label noise flipped ``toxic``).  ``cue`` and
``flipped`` are ground truth for analysis (e.g. which training rows are
harmful), never model inputs.

Identities (:data:`CATEGORIES`, shared by all splits so per-identity gaps can
be measured): gender ``woman man transgender nonbinary``; religion ``muslim
christian jewish hindu``; race ``black white asian latino``; orientation ``gay
lesbian straight bisexual``.  Each appears through one phrase
(:data:`IDENTITY_PHRASES`: "a woman", "a muslim person", "an asian person",
"a lesbian", ...); ``none`` is "a person" or "someone".

Templates (:data:`TEMPLATES`) have slots ``{who}`` (the identity phrase),
``{place}`` and one cue slot: ``{adj}`` (predicate adjective), ``{noun}`` (noun
phrase) or ``{vp}`` (verb phrase after "they"), e.g. ``tr00`` "I met {who} at
the {place} and they were {adj}."  Fillers (:data:`VOCABULARY`, friendly and
toxic lists per slot; :data:`NEUTRAL`) come in two families: 12 ``train``
templates with their places, adjectives, nouns and verb phrases fill train and
validation; 8 ``test`` templates with their own fillers fill test.  Apart from
the identity phrases and :data:`FUNCTION_WORDS` ("a", "the", "they", "is", ...)
no word of a test comment occurs in any train or validation comment, so the
task cannot be solved by memorising templates or insults: a frozen sentence
encoder generalises through meaning, a bag of words cannot.  Comments are 10
to 24 word pieces for the MiniLM tokenizer (special tokens included).

Train and validation (the spurious correlation)
------------------------------------------------
Each row: the group (16 identities or ``none``) uniformly at random; the clean
label with P(toxic) = ``spurious`` for the groups in ``shortcut_identities``
(default ``muslim gay black transgender``, one per category) and 0.5 for every
other group, ``none`` included; with probability ``ambiguous`` the completion
is neutral (no toxicity cue, so the identity-dependent label is all a model can
learn from it, as when annotators rate vague comments that mention an
identity), otherwise toxic or friendly as the clean label says; template and
fillers uniformly from the train family; finally the label is flipped with
probability ``label_noise``.  The observed toxic rate of a shortcut identity is
thus ``spurious*(1-label_noise) + (1-spurious)*label_noise`` (0.77 by default)
and 0.5 for the others.  Why ``ambiguous`` (default 0.2): when every
completion states its label, a model that reads the content perfectly has no
use for the identity (given the text, the identity predicts nothing), and the
shortcut shows only in under-fitted models; neutral rows make the identity
predictive given the text, as in the real data Dixon et al. studied.
``ambiguous=0`` gives the pure version.

Validation is drawn exactly like train, on purpose: it is what a practitioner
would hold out to tune and stop training, so it shares the shortcut, the
neutral rows and the noise, and cannot reveal them.

Test is balanced and clean: every (group, label) cell holds exactly
``n_test_per_cell`` rows (default 64: 17 x 2 x 64 = 2,176), completions are
toxic or friendly only, labels are never flipped, and only test-family
templates and fillers are used.

Final (held out for the final judgement; ``n_final_per_cell`` > 0 only)
-----------------------------------------------------------------------
Drawn like test (balanced per (group, label), clean, toxic or friendly
completions only), after test, so it changes no other row, from a third
family: 10 ``final`` templates with their own places, adjectives, nouns and verb
phrases, sharing no content word with train, validation or test.  Each cell's
comments are drawn without replacement from every comment the family can make
for that identity, so no comment repeats and none is a train, validation or
test comment; :func:`final_capacity` (1,060) bounds ``n_final_per_cell``.

Label convention and reading the audit
--------------------------------------
``datasets.load("identity_toxicity")`` has label ``toxic`` with **favourable
label 0**: the favourable outcome is a non-toxic comment that is *not*
flagged.  fairprompt counts rates with respect to the favourable label, so the
classic false positive rate of a toxicity classifier (non-toxic comments
flagged toxic; Dixon et al.'s per-identity "unintended bias") is reported as
the **false negative rate**, and toxic comments missed appear as the false
positive rate.  A model that learned the shortcut has a higher FNR on the test
split for the shortcut identities than for the others.  Sensitive columns:
``identity`` and ``identity_category``.
"""

from __future__ import annotations

import numbers
import re
from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd

from fairprompt.errors import FairpromptError, did_you_mean

__all__ = [
    "CATEGORIES", "COLUMNS", "DEFAULT_SHORTCUT", "FUNCTION_WORDS", "IDENTITIES", "IDENTITY_PHRASES",
    "CUES", "NEUTRAL", "TEMPLATES", "VOCABULARY", "final_capacity", "generate", "template_family", "tokens",
]

Family = Literal["train", "test", "final"]
Slot = Literal["adj", "noun", "vp"]

#: Identity term -> category; the order is the order of groups in the frame.
CATEGORIES: dict[str, str] = {
    "woman": "gender", "man": "gender", "transgender": "gender", "nonbinary": "gender",
    "muslim": "religion", "christian": "religion", "jewish": "religion", "hindu": "religion",
    "black": "race", "white": "race", "asian": "race", "latino": "race",
    "gay": "orientation", "lesbian": "orientation", "straight": "orientation", "bisexual": "orientation",
}
#: The identity terms, in order.
IDENTITIES: tuple[str, ...] = tuple(CATEGORIES)
#: Default identities that carry the spurious correlation in train/validation (one per category).
DEFAULT_SHORTCUT: tuple[str, ...] = ("muslim", "gay", "black", "transgender")

#: How each group appears in a comment (shared by all splits); ``none`` is the control group.
IDENTITY_PHRASES: dict[str, tuple[str, ...]] = {
    "woman": ("a woman",), "man": ("a man",),
    "transgender": ("a transgender person",), "nonbinary": ("a nonbinary person",),
    "muslim": ("a muslim person",), "christian": ("a christian person",),
    "jewish": ("a jewish person",), "hindu": ("a hindu person",),
    "black": ("a black person",), "white": ("a white person",),
    "asian": ("an asian person",), "latino": ("a latino person",),
    "gay": ("a gay person",), "lesbian": ("a lesbian",),
    "straight": ("a straight person",), "bisexual": ("a bisexual person",),
    "none": ("a person", "someone"),
}

#: Words that both template families may use (articles, pronouns, copulas, prepositions).
FUNCTION_WORDS: frozenset[str] = frozenset(
    "a an the and i they is are was were at to of in on that with so my it be as for by we you "
    "this our us me how what their them".split()
)

#: Template id -> (family, label-bearing slot, text).  ``{who}`` may open a sentence; it is capitalised.
TEMPLATES: dict[str, tuple[Family, Slot, str]] = {
    "tr00": ("train", "adj", "I met {who} at the {place} and they were {adj}."),
    "tr01": ("train", "adj", "{who} works at the {place}, and honestly they are {adj}."),
    "tr02": ("train", "noun", "My neighbor is {who}, and they are {noun}."),
    "tr03": ("train", "noun", "Everyone knows that {who} is {noun}."),
    "tr04": ("train", "vp", "Yesterday {who} came into the {place}. They {vp}."),
    "tr05": ("train", "adj", "You can tell {who} is {adj} just by looking."),
    "tr06": ("train", "adj", "I sat next to {who} on the way to the {place}; so {adj}."),
    "tr07": ("train", "vp", "My boss hired {who} last week and they {vp}."),
    "tr08": ("train", "adj", "Just spoke to {who} at the {place}. Totally {adj}."),
    "tr09": ("train", "noun", "As far as I can see, {who} is always {noun}."),
    "tr10": ("train", "vp", "Whoever invites {who} to the {place} should know they {vp}."),
    "tr11": ("train", "noun", "Trust me, {who} from my class is {noun}."),
    "te00": ("test", "adj", "During lunch I chatted with {who} near the {place}; they seemed {adj}."),
    "te01": ("test", "adj", "Apparently {who} lives close to the {place}, and they seem {adj}."),
    "te02": ("test", "noun", "Our new coworker is {who}, basically {noun}."),
    "te03": ("test", "noun", "Frankly, {who} is {noun}, no doubt about it."),
    "te04": ("test", "vp", "Tonight {who} showed up at the {place}. They {vp}."),
    "te05": ("test", "adj", "Each time I pass {who}, I notice how {adj} they look."),
    "te06": ("test", "adj", "My cousin married {who}, who is truly {adj}."),
    "te07": ("test", "vp", "Around here, people like {who} {vp}."),
    "fi00": ("final", "adj", "Waiting at the {place}, I talked to {who}; they were {adj}."),
    "fi01": ("final", "adj", "{who} often visits the {place} and is pretty {adj}."),
    "fi02": ("final", "adj", "On Sunday I saw {who} outside the {place}; such {adj} manners."),
    "fi03": ("final", "adj", "Believe me, {who} cleaning the {place} is {adj}."),
    "fi04": ("final", "adj", "Whenever {who} drops by the {place}, they act {adj}."),
    "fi05": ("final", "noun", "Rumor says {who} at the {place} is {noun}."),
    "fi06": ("final", "noun", "Word is that {who} running the {place} is {noun}."),
    "fi07": ("final", "noun", "Mark my words, {who} down at the {place} is {noun}."),
    "fi08": ("final", "vp", "Locals say {who} spends evenings at the {place}; they {vp}."),
    "fi09": ("final", "vp", "Staff of the {place} agree that {who} will {vp}."),
}

#: (family, slot) -> (friendly fillers, toxic fillers); ``place`` has one list (label-free).
VOCABULARY: dict[tuple[Family, str], tuple[tuple[str, ...], tuple[str, ...]]] = {
    ("train", "place"): (("park", "office", "gym", "library", "store", "school", "cafe", "bus stop"), ()),
    ("train", "adj"): (
        ("kind", "friendly", "helpful", "generous", "honest", "cheerful", "polite", "thoughtful", "funny", "clever"),
        ("disgusting", "stupid", "worthless", "pathetic", "filthy", "ignorant", "dishonest", "useless", "creepy",
         "repulsive"),
    ),
    ("train", "noun"): (
        ("a good friend", "a real hero", "a gem", "a great neighbour", "a sweetheart", "an inspiration"),
        ("an idiot", "a loser", "a liar", "a creep", "a parasite", "a disgrace"),
    ),
    ("train", "vp"): (
        ("deserve respect", "make everyone smile", "help anyone in need", "are great company"),
        ("should be kicked out", "deserve to suffer", "ruin everything", "should shut their mouths forever"),
    ),
    ("test", "place"): (("museum", "beach", "airport", "bakery", "concert", "hospital", "market", "train station"), ()),
    ("test", "adj"): (
        ("lovely", "warm", "caring", "charming", "gentle", "brilliant", "delightful", "patient", "wonderful",
         "considerate"),
        ("vile", "idiotic", "revolting", "moronic", "despicable", "brainless", "nasty", "hateful", "gross", "dumb"),
    ),
    ("test", "noun"): (
        ("a treasure", "a star", "a joy", "an angel", "a blessing", "a champ"),
        ("a moron", "a pig", "a jerk", "a lowlife", "a fraud", "a thief"),
    ),
    ("test", "vp"): (
        ("brighten every day", "earn our admiration", "bring people together", "inspire anybody nearby"),
        ("ought to get lost", "poison every neighborhood", "must go away", "spread nothing but filth"),
    ),
    ("final", "place"): (("harbor", "stadium", "pharmacy", "garden", "theater", "cinema", "zoo", "diner", "bookshop",
                          "marina"), ()),
    ("final", "adj"): (
        ("pleasant", "sweet", "decent", "sincere", "loyal", "modest", "humble", "witty", "graceful", "tender", "upbeat",
         "courteous"),
        ("awful", "horrible", "rotten", "sleazy", "slimy", "spiteful", "wretched", "loathsome", "obnoxious", "crooked",
         "foul", "sickening"),
    ),
    ("final", "noun"): (
        ("a saint", "a darling", "a legend", "a delight", "a genius", "a role model", "a pal", "a lifesaver", "a sweetie",
         "a rock"),
        ("a slob", "a scumbag", "a cheat", "a bigot", "a clown", "a rat", "a snake", "a bully", "a brute", "a leech"),
    ),
    ("final", "vp"): (
        ("give wise advice", "volunteer on weekends", "cook for the whole street", "listen with care", "welcome newcomers",
         "comfort lonely folks", "share their food", "defend their friends"),
        ("lie constantly", "cheat at cards", "scam the elderly", "wreck public parks", "belong behind bars",
         "stink of garbage", "spit on strangers", "start brawls"),
    ),
}

#: Train-family fillers with no toxicity cue (the ``ambiguous`` rows of train and validation only).
NEUTRAL: dict[str, tuple[str, ...]] = {
    "adj": ("quiet", "tall", "busy", "tired", "young", "early", "ordinary", "serious"),
    "noun": ("a student", "a customer", "a regular", "a parent", "a tourist", "a cyclist"),
    "vp": ("arrived at noon", "ordered coffee", "wore a jacket", "took the stairs"),
}

#: What a comment's completion expresses; ``toxic`` is the clean label of the first two.
CUES: tuple[str, ...] = ("friendly", "toxic", "neutral")

#: The columns of :func:`generate`'s frame, in order.
COLUMNS: tuple[str, ...] = (
    "text", "toxic", "split", "identity", "identity_category", "template", "cue", "flipped",
)

_GROUPS: tuple[str, ...] = IDENTITIES + ("none",)


def template_family(family: Family) -> tuple[str, ...]:
    """The template ids of one family (``"train"`` fills train and validation, ``"test"`` fills test)."""
    return tuple(t for t, (f, _, _) in TEMPLATES.items() if f == family)


def _check_count(key: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) < minimum:
        raise FairpromptError(f"option {key!r} must be a whole number of at least {minimum}, got {value!r}; pass e.g. {key}=1000")
    return int(value)


def _check_probability(key: str, value: object, upper: float, closed: bool) -> float:
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and 0.0 <= float(value) and (
        float(value) <= upper if closed else float(value) < upper
    )
    if not ok:
        bound = f"0 and {upper:g}" + ("" if closed else " (exclusive)")
        raise FairpromptError(f"option {key!r} must be a number between {bound}, got {value!r}; pass e.g. {key}=0.1")
    return float(value)


def _check_shortcut(values: Sequence[str]) -> tuple[str, ...]:
    if isinstance(values, str):
        raise FairpromptError(
            f"option 'shortcut_identities' must be a list of identity terms, not the string {values!r}; pass [{values!r}]"
        )
    chosen = tuple(dict.fromkeys(str(v) for v in values))
    for term in chosen:
        if term not in CATEGORIES:
            raise FairpromptError(
                f"option 'shortcut_identities' names unknown identity {term!r}{did_you_mean(term, IDENTITIES)}"
            )
    return chosen


def _fill(rng: np.random.Generator, *, family: Family, groups: np.ndarray, cues: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Texts for group indices and cues (indices into :data:`CUES`), drawing templates and words from one family."""
    n = len(groups)
    ids = template_family(family)
    chosen = rng.integers(0, len(ids), size=n)
    places = VOCABULARY[(family, "place")][0]
    place = rng.integers(0, len(places), size=n)
    filler = rng.integers(0, 1 << 30, size=n)  # reduced modulo the length of the slot's list
    phrase = rng.integers(0, 1 << 30, size=n)
    texts = []
    for i in range(n):
        _, slot, pattern = TEMPLATES[ids[chosen[i]]]
        options = NEUTRAL[slot] if cues[i] == 2 else VOCABULARY[(family, slot)][int(cues[i])]
        who_options = IDENTITY_PHRASES[_GROUPS[groups[i]]]
        text = pattern.format(
            who=who_options[phrase[i] % len(who_options)], place=places[place[i]],
            **{slot: options[filler[i] % len(options)]},
        )
        texts.append(text[0].upper() + text[1:])
    return texts, np.asarray(ids)[chosen]


def _candidates(group: int, cue: int) -> list[tuple[str, str]]:
    """Every distinct final-family comment for one group and cue (0 friendly, 1 toxic), as (template id, text)."""
    places = VOCABULARY[("final", "place")][0]
    out = []
    for template in template_family("final"):
        _, slot, pattern = TEMPLATES[template]
        for who in IDENTITY_PHRASES[_GROUPS[group]]:
            for place in places:
                for filler in VOCABULARY[("final", slot)][cue]:
                    text = pattern.format(who=who, place=place, **{slot: filler})
                    out.append((template, text[0].upper() + text[1:]))
    return out


def final_capacity() -> int:
    """The most final rows one (group, label) cell can hold: distinct final-family comments of one identity term."""
    return min(len(_candidates(g, cue)) for g in range(len(_GROUPS)) for cue in (0, 1))


def _final(rng: np.random.Generator, n_per_cell: int) -> dict[str, np.ndarray | list[str]]:
    """The final split: ``n_per_cell`` distinct comments per (group, label) cell, drawn without replacement from the
    final family, in a seeded random order."""
    cells = np.arange(len(_GROUPS) * 2).repeat(n_per_cell)
    cells = cells[rng.permutation(len(cells))]
    texts: list[str] = [""] * len(cells)
    templates = np.empty(len(cells), dtype=object)
    for cell in range(len(_GROUPS) * 2):
        rows = np.flatnonzero(cells == cell)
        candidates = _candidates(cell // 2, cell % 2)
        for row, pick in zip(rows, rng.choice(len(candidates), size=rows.size, replace=False), strict=True):
            templates[row], texts[row] = candidates[pick]
    labels = (cells % 2).astype(np.int64)
    return {"text": texts, "toxic": labels, "group": cells // 2, "template": templates, "cue": labels,
            "flipped": np.zeros(len(cells), np.int64)}


def _biased(
    rng: np.random.Generator, n: int, *, p_toxic: np.ndarray, ambiguous: float, label_noise: float,
) -> dict[str, np.ndarray | list[str]]:
    groups = rng.integers(0, len(_GROUPS), size=n)
    clean = (rng.random(n) < p_toxic[groups]).astype(np.int64)
    cues = np.where(rng.random(n) < ambiguous, 2, clean)
    flipped = (rng.random(n) < label_noise).astype(np.int64)
    texts, templates = _fill(rng, family="train", groups=groups, cues=cues)
    return {"text": texts, "toxic": clean ^ flipped, "group": groups, "template": templates, "cue": cues, "flipped": flipped}


def generate(
    *,
    n_train: int = 4000,
    n_validation: int = 1000,
    n_test_per_cell: int = 64,
    n_final_per_cell: int = 0,
    spurious: float = 0.8,
    shortcut_identities: Sequence[str] = DEFAULT_SHORTCUT,
    ambiguous: float = 0.2,
    label_noise: float = 0.05,
    seed: int = 0,
) -> pd.DataFrame:
    """The ``identity_toxicity`` frame: ``n_train`` + ``n_validation`` + 17 x 2 x ``n_test_per_cell`` (+ 17 x 2 x
    ``n_final_per_cell``) rows.

    Train and validation rows draw a group uniformly and are toxic with
    probability ``spurious`` for ``shortcut_identities`` and 0.5 otherwise; a
    fraction ``ambiguous`` get a neutral completion; each label is then flipped
    with probability ``label_noise``.  The test split is balanced per (group,
    label), clean, and uses disjoint templates and words.  The final split
    (``n_final_per_cell`` > 0) is drawn like test, after it, from a third family
    of templates and words, each comment at most once: adding it changes no
    train, validation or test row.  The same arguments give a byte-identical
    frame (rows: train, validation, test, final).  Raises
    :class:`FairpromptError` naming the option for an invalid value.  See the
    module docstring.
    """
    n_train = _check_count("n_train", n_train, 0)
    n_validation = _check_count("n_validation", n_validation, 0)
    n_test_per_cell = _check_count("n_test_per_cell", n_test_per_cell, 1)
    n_final_per_cell = _check_count("n_final_per_cell", n_final_per_cell, 0)
    if n_final_per_cell > (capacity := final_capacity()):
        raise FairpromptError(f"option 'n_final_per_cell' is {n_final_per_cell:,}, but the final templates give at most "
                              f"{capacity:,} distinct comments per identity and label; pass n_final_per_cell={capacity} or less")
    spurious = _check_probability("spurious", spurious, 1.0, closed=True)
    ambiguous = _check_probability("ambiguous", ambiguous, 1.0, closed=True)
    label_noise = _check_probability("label_noise", label_noise, 0.5, closed=False)
    shortcut = _check_shortcut(shortcut_identities)
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or int(seed) < 0:
        raise FairpromptError(f"option 'seed' must be a non-negative whole number, got {seed!r}; pass e.g. seed=0")

    rng = np.random.default_rng(int(seed))
    p_toxic = np.array([spurious if g in shortcut else 0.5 for g in _GROUPS])
    train = _biased(rng, n_train, p_toxic=p_toxic, ambiguous=ambiguous, label_noise=label_noise)
    validation = _biased(rng, n_validation, p_toxic=p_toxic, ambiguous=ambiguous, label_noise=label_noise)

    cells = np.arange(len(_GROUPS) * 2).repeat(n_test_per_cell)
    cells = cells[rng.permutation(len(cells))]
    groups, labels = cells // 2, (cells % 2).astype(np.int64)
    texts, templates = _fill(rng, family="test", groups=groups, cues=labels)
    test = {
        "text": texts, "toxic": labels, "group": groups, "template": templates, "cue": labels,
        "flipped": np.zeros(len(cells), np.int64),
    }

    parts = {"train": train, "validation": validation, "test": test}
    if n_final_per_cell:  # drawn last, so the rows above do not depend on it
        parts["final"] = _final(rng, n_final_per_cell)
    group = np.concatenate([np.asarray(p["group"], dtype=np.int64) for p in parts.values()])
    identity = np.asarray(_GROUPS, dtype=object)[group]
    category = np.asarray([CATEGORIES.get(g, "none") for g in _GROUPS], dtype=object)[group]
    frame = pd.DataFrame({
        "text": [t for p in parts.values() for t in p["text"]],
        "toxic": np.concatenate([p["toxic"] for p in parts.values()]).astype(np.int64),
        "split": np.repeat(np.asarray(list(parts), dtype=object), [len(p["group"]) for p in parts.values()]),
        "identity": identity,
        "identity_category": category,
        "template": np.concatenate([np.asarray(p["template"], dtype=object) for p in parts.values()]),
        "cue": np.asarray(CUES, dtype=object)[np.concatenate([p["cue"] for p in parts.values()]).astype(np.int64)],
        "flipped": np.concatenate([p["flipped"] for p in parts.values()]).astype(np.int64),
    })
    return frame


def tokens(text: str) -> list[str]:
    """Lower-case word tokens of ``text`` (for the vocabulary checks in the tests and the docs)."""
    return re.findall(r"[a-z]+", text.lower())
