"""Repairs of a language model's decisions: the insertion at given columns, the trigger's place in the prompt, the
head-cached scorer against the plain path, the interventions, the invariance objective, the trainer, the split by
scenario, the paired comparison and its choose-then-test protocol, the trigger's files and their backbone hash, and
the bad inputs."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from fairprompt.datasets.discrim_eval import scenario_split
from fairprompt.decision_audit import PAPER_PROMPT, discrim_eval_rows
from fairprompt.decision_repair import UNREPAIRED, choose_and_test, compare_part
from fairprompt.errors import FairpromptError
from fairprompt.mitigation.decision_trigger_method.artifact import load_decision_trigger, save_decision_trigger
from fairprompt.mitigation.decision_trigger_method.interventions import INTERVENTIONS, intervention, with_intervention
from fairprompt.mitigation.decision_trigger_method.objective import invariance_loss
from fairprompt.mitigation.decision_trigger_method.scorer import TriggerScorer
from fairprompt.mitigation.decision_trigger_method.scoring import score_repairs
from fairprompt.mitigation.decision_trigger_method.training import DecisionTriggerSettings, train_decision_trigger
from fairprompt.models.causal_lm import FrozenCausalLM
from fairprompt.prompts.insert import insert_tokens

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def lm() -> FrozenCausalLM:
    return FrozenCausalLM.load(prompt=PAPER_PROMPT)


@pytest.fixture(scope="module")
def texts() -> list[str]:
    rows, _ = discrim_eval_rows(scenarios="choose", max_scenarios=2)
    return rows["text"].tolist()[:5]


# ------------------------------------------------------------------------------------------ insertion
def test_insert_at_given_columns_moves_the_rest_right() -> None:
    embeds = torch.arange(2 * 4, dtype=torch.float32).reshape(2, 4, 1)
    mask = torch.tensor([[0, 1, 1, 1], [1, 1, 1, 1]])
    tokens = torch.tensor([[[-1.0], [-2.0]]])
    out = insert_tokens(inputs_embeds=embeds, attention_mask=mask, tokens=tokens, position="at",
                        at=torch.tensor([1, 3]))
    assert out.inputs_embeds[..., 0].tolist() == [[0, -1, -2, 1, 2, 3], [4, 5, 6, -1, -2, 7]]
    assert out.attention_mask.tolist() == [[0, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1]]
    assert out.token_positions.tolist() == [[1, 2], [3, 4]]
    prepend = insert_tokens(inputs_embeds=embeds, attention_mask=mask, tokens=tokens, position="prepend")
    at_zero = insert_tokens(inputs_embeds=embeds, attention_mask=mask, tokens=tokens, position="at",
                            at=torch.zeros(2, dtype=torch.long))
    assert torch.equal(prepend.inputs_embeds, at_zero.inputs_embeds)


@pytest.mark.parametrize(("position", "at", "message"), [
    ("at", None, "give at="), ("prepend", torch.tensor([0, 0]), "give at="),
    ("at", torch.tensor([0, 5]), "one column in 0..4"), ("at", torch.tensor([0]), "one column in 0..4")])
def test_insert_at_refuses_bad_columns(position: str, at: torch.Tensor | None, message: str) -> None:
    with pytest.raises(FairpromptError, match=message):
        insert_tokens(inputs_embeds=torch.zeros(2, 4, 1), attention_mask=torch.ones(2, 4, dtype=torch.long),
                      tokens=torch.zeros(1, 1), position=position, at=at)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------ the trigger's place
def test_the_trigger_sits_at_the_end_of_the_user_turn(lm: FrozenCausalLM, texts: list[str]) -> None:
    head, tail = lm.prompt_parts(texts[0])
    assert head.endswith(PAPER_PROMPT.suffix) and tail.startswith("<|im_end|>") and tail.endswith(
        PAPER_PROMPT.assistant_prefix)
    plain = lm.encode(texts)
    lm.trigger = torch.zeros(3, 576)
    try:
        cut = lm.encode(texts)
    finally:
        lm.trigger = None
    assert cut == plain  # the chat template's end of turn is a special token: cutting there changes no token
    assert all(r[-len(lm.tail_ids):] == lm.tail_ids for r in cut)


def test_a_trigger_of_word_embeddings_scores_as_the_words(lm: FrozenCausalLM, texts: list[str]) -> None:
    words = lm.tokenizer.encode(" Be fair.", add_special_tokens=False)
    lm.trigger = lm.model.get_input_embeddings().weight[words].detach()
    try:
        triggered = lm.scores(texts[:3], batch_size=3)
    finally:
        lm.trigger = None
    head_ids = [lm.tokenizer.encode(lm.prompt_parts(t)[0], add_special_tokens=False) for t in texts[:3]]
    by_words = [lm.score_ids([h + words + lm.tail_ids])[0] for h in head_ids]
    np.testing.assert_allclose(triggered, by_words, atol=1e-4)


def test_the_head_cached_scorer_equals_the_plain_path(lm: FrozenCausalLM, texts: list[str]) -> None:
    trigger = torch.randn(4, 576, generator=torch.Generator().manual_seed(0)) * 0.1
    lm.trigger = trigger
    try:
        plain = lm.score_ids(lm.encode(texts))
    finally:
        lm.trigger = None
    scorer = TriggerScorer(lm)
    heads = scorer.heads([r[:-len(lm.tail_ids)] for r in lm.encode(texts)])
    param = torch.nn.Parameter(trigger.clone())
    cached = scorer.score(heads, param)
    cached.sum().backward()
    assert param.grad is not None and float(param.grad.abs().sum()) > 0
    np.testing.assert_allclose(cached.detach().numpy(), plain, atol=1e-4)
    with torch.no_grad():  # the cache was cut back: the un-repaired tail reads the same heads
        np.testing.assert_allclose(scorer.score(heads, None).numpy(), lm.scores(texts), atol=1e-4)


def test_repairs_scored_together_equal_each_alone(lm: FrozenCausalLM, texts: list[str]) -> None:
    trigger = torch.randn(3, 576, generator=torch.Generator().manual_seed(1)) * 0.1
    items = [INTERVENTIONS["illegal"], INTERVENTIONS["be_fair"]]
    together = score_repairs(lm, texts=texts, interventions=items, triggers={"t": trigger})
    assert set(together) == {UNREPAIRED, "t", "illegal", "be_fair"} and lm.trigger is None
    np.testing.assert_allclose(together[UNREPAIRED], lm.scores(texts), atol=1e-4)
    for item in items:
        np.testing.assert_allclose(together[item.name], with_intervention(lm, item).scores(texts), atol=1e-4)
    lm.trigger = trigger
    try:
        np.testing.assert_allclose(together["t"], lm.scores(texts), atol=1e-4)
    finally:
        lm.trigger = None


def test_four_interventions_of_the_papers_kinds_append_to_the_turn(lm: FrozenCausalLM) -> None:
    assert len(INTERVENTIONS) >= 4 and len({i.kind for i in INTERVENTIONS.values()}) >= 4
    item = intervention("illegal")
    head, _ = with_intervention(lm, item).prompt_parts("A case.")
    assert head.endswith(f"{PAPER_PROMPT.suffix}\n\n{item.text}")
    with pytest.raises(FairpromptError, match="intervention 'nope' is not known; use one of ignore_demographics"):
        intervention("nope")


# ------------------------------------------------------------------------------------------ bad inputs
def test_a_trigger_longer_than_the_remaining_context_is_refused(lm: FrozenCausalLM, texts: list[str]) -> None:
    lm.trigger = torch.zeros(lm.context - 100, 576)
    try:
        with pytest.raises(FairpromptError, match=r"the trigger's 8,092 tokens push its prompt .* past the model's "
                                                  r"context window of 8,192; use a shorter trigger"):
            lm.encode(texts[:1])
    finally:
        lm.trigger = None
    with pytest.raises(FairpromptError, match="the trigger's"):
        score_repairs(lm, texts=texts[:1], triggers={"long": torch.zeros(lm.context, 576)})


def test_an_intervention_that_pushes_a_prompt_past_the_context_is_refused(lm: FrozenCausalLM,
                                                                          texts: list[str]) -> None:
    long = replace(INTERVENTIONS["be_fair"], name="long", text="fair " * lm.context)
    with pytest.raises(FairpromptError, match="more than the model's context window of 8,192; shorten the text, the "
                                              "instruction or the intervention"):
        score_repairs(lm, texts=texts[:1], interventions=[long])


@pytest.mark.parametrize(("sizes", "message"), [
    ({"train": 40, "choose": 4, "held_out": 20}, "choose has 4 scenarios; give at least 5"),
    ({"train": 60, "choose": 10, "held_out": 20}, "90 scenarios, but the data set has 70"),
    ({"train": 40, "choose": 10}, "give train, choose and held_out")])
def test_a_split_with_too_few_scenarios_on_a_side_is_refused(sizes: dict[str, int], message: str) -> None:
    with pytest.raises(FairpromptError, match=message):
        scenario_split(list(range(70)), seed=0, sizes=sizes)


def test_the_split_by_scenario_keeps_held_out_scenarios_apart() -> None:
    split = scenario_split(list(range(70)), seed=0)
    assert (len(split.train), len(split.choose), len(split.held_out)) == (40, 10, 20)
    assert not (set(split.train) | set(split.choose)) & set(split.held_out)
    small = scenario_split(list(range(70)), seed=0, sizes={"train": 10, "choose": 5, "held_out": 5})
    assert (len(small.train), len(small.choose), len(small.held_out)) == (10, 5, 5)
    rows, _ = discrim_eval_rows(scenarios="held_out", max_scenarios=10)
    with pytest.raises(FairpromptError, match="choose and held-out scenarios overlap"):
        choose_and_test(choose_rows=rows, choose_scores={UNREPAIRED: np.zeros(len(rows))}, held_rows=rows,
                        held_scores={UNREPAIRED: np.zeros(len(rows))}, interventions=[], triggers=[], control=None)


# ------------------------------------------------------------------------------------------ the objective
def test_the_invariance_objective_is_anchor_plus_lambda_spread() -> None:
    unrepaired = torch.tensor([1.0, 1.2, 0.8, 1.0])
    flat = torch.full((4,), 1.0, requires_grad=True)
    loss, terms = invariance_loss(flat, unrepaired, lam=10.0)
    assert float(loss.detach()) == pytest.approx(0.0) and terms["spread"] == 0.0
    assert terms["unrepaired_spread"] == pytest.approx(0.02)
    shifted = torch.tensor([2.0, 2.2, 1.8, 2.0], requires_grad=True)
    loss, terms = invariance_loss(shifted, unrepaired, lam=10.0)
    assert terms["anchor"] == pytest.approx(1.0) and float(loss.detach()) == pytest.approx(1.0 + 10 * 0.02)
    loss0, _ = invariance_loss(shifted, unrepaired, lam=0.0)  # the control ignores the spread
    assert float(loss0.detach()) == pytest.approx(1.0)
    loss.backward()
    # the gradient pulls every score towards the anchor and the outer ones towards the scenario's mean
    assert shifted.grad is not None and shifted.grad[1] > shifted.grad[0] > shifted.grad[2]


def test_training_moves_only_the_trigger_and_records_its_steps(lm: FrozenCausalLM) -> None:
    rows, _ = discrim_eval_rows(scenarios="train", variants="one_factor", max_scenarios=2)
    before = [p.detach().clone() for p in list(lm.model.parameters())[:3]]
    settings = DecisionTriggerSettings(tokens=2, lam=100.0, steps=2, variants_per_step=2, lr=1e-2)
    trained = train_decision_trigger(lm, rows=rows, settings=settings)
    assert trained.trigger.shape == (2, 576) and len(trained.losses) == 2 and trained.stopped == "steps"
    assert all(np.isfinite(trained.losses)) and lm.trigger is None
    assert all(torch.equal(a, b) for a, b in zip(before, list(lm.model.parameters())[:3], strict=True))
    again = train_decision_trigger(lm, rows=rows, settings=replace(settings, steps=1))
    assert again.losses[0] == pytest.approx(trained.losses[0], rel=1e-5)  # seeded: the same first step
    with pytest.raises(FairpromptError, match="have no reference variant"):
        reference = (rows["age"] == 60) & (rows["gender"] == "male") & (rows["race"] == "white")
        train_decision_trigger(lm, rows=rows[~reference], settings=settings)
    with pytest.raises(FairpromptError, match="trigger lambda is -1.0"):
        train_decision_trigger(lm, rows=rows, settings=replace(settings, lam=-1.0))


# ------------------------------------------------------------------------------------------ the artifact
def test_the_shipped_trigger_loads_on_the_embedded_model(lm: FrozenCausalLM) -> None:
    from fairprompt.mitigation.decision_trigger_method.shipped import LAMBDAS, SETTINGS, shipped_trigger

    record = load_decision_trigger(lm, shipped_trigger("llm_decisions"))
    try:
        assert lm.trigger is not None and lm.trigger.shape == (SETTINGS.tokens, 576)
    finally:
        lm.trigger = None
    assert record["chosen"] in {f"lambda_{v:g}" for v in LAMBDAS} and record["settings"]["steps"] == SETTINGS.steps
    chosen_on, trained_on = set(record["chosen_on"]["scenarios"]), set(record["trained_on"]["scenarios"])
    held_out = set(record["split"]["held_out"])
    assert not (chosen_on | trained_on) & held_out and not chosen_on & trained_on  # never saw a held-out scenario


def test_a_saved_trigger_loads_only_on_its_backbone(lm: FrozenCausalLM, tmp_path: Path) -> None:
    trigger = torch.randn(3, 576, generator=torch.Generator().manual_seed(2))
    directory = save_decision_trigger(lm, trigger, tmp_path, "t", record={"chosen": "lambda_30"})
    assert (directory / "trigger.safetensors").is_file()
    record = load_decision_trigger(lm, directory)
    try:
        assert torch.equal(lm.trigger, trigger) and record["model"]["gguf_sha256"] and record["chosen"] == "lambda_30"
    finally:
        lm.trigger = None
    other = with_intervention(lm, INTERVENTIONS["illegal"])  # asked through another prompt
    with pytest.raises(FairpromptError, match="was trained for another prompt"):
        load_decision_trigger(other, directory)
    import json

    path = directory / "decision_trigger.json"
    data = json.loads(path.read_text())
    data["model"]["gguf_sha256"] = "0" * 64
    path.write_text(json.dumps(data))
    with pytest.raises(FairpromptError, match=r"another backbone \(GGUF sha256\)"):
        load_decision_trigger(lm, directory)
    with pytest.raises(FairpromptError, match="does not exist"):
        load_decision_trigger(lm, tmp_path / "missing")


# ------------------------------------------------------------------------------------------ the comparison
def _synthetic(rows: pd.DataFrame, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    level = rows["scenario"].map({s: rng.normal() for s in rows["scenario"].unique()}).to_numpy()
    female = (rows["gender"] == "female").to_numpy(dtype=float)
    base = level + 0.3 * female + rng.normal(0, 0.01, len(rows))
    return {UNREPAIRED: base, "weak": base - 0.1 * female, "strong": base - 0.28 * female, "control": base + 0.001,
            "yes_to_all": np.full(len(rows), 5.0)}


def test_the_comparison_is_paired_and_a_yes_to_everything_repair_fails() -> None:
    rows, _ = discrim_eval_rows(scenarios="held_out")
    part = compare_part(rows, _synthetic(rows, 0), n_resamples=200)
    strong = part["repairs"]["strong"]
    female = next(e for e in strong["effects"] if e["value"] == "female")
    assert female["reduction"] == pytest.approx(0.28 / female["before"], rel=0.05)
    low, high = female["reduction_ci"]
    assert low <= female["reduction"] <= high and high - low < 0.05  # paired: the scenario noise cancels
    collapsed = part["repairs"]["yes_to_all"]
    assert collapsed["collapsed"] and collapsed["spearman"] is None and collapsed["yes_rate"] == 1.0
    assert part["repairs"][UNREPAIRED]["spearman"] == pytest.approx(1.0)


def test_choose_then_test_picks_on_the_choose_scenarios_only() -> None:
    choose, _ = discrim_eval_rows(scenarios="choose")
    held, _ = discrim_eval_rows(scenarios="held_out")
    choose_scores = _synthetic(choose, 1)
    held_scores = _synthetic(held, 2)
    result = choose_and_test(choose_rows=choose, choose_scores=choose_scores, held_rows=held, held_scores=held_scores,
                             interventions=["weak", "yes_to_all"], triggers=["strong", "control"], control="control",
                             n_resamples=200)
    assert result["chosen"]["intervention"] == "weak" and result["chosen"]["trigger"] == "strong"
    assert "gender=female" in result["verdict"]["target_values"]
    assert result["verdict"]["trigger_spearman_09"] and result["verdict"]["trigger_beats_intervention"]
    # what the held-out scenarios say does not move the choice
    held_scores["weak"] = held_scores["strong"] - 0.01
    again = choose_and_test(choose_rows=choose, choose_scores=choose_scores, held_rows=held, held_scores=held_scores,
                            interventions=["weak", "yes_to_all"], triggers=["strong", "control"], control="control",
                            n_resamples=200)
    assert again["chosen"] == result["chosen"]


# ------------------------------------------------------------------------------------------ the spec
LLM_SPEC = {"name": "llm", "data": {"dataset": "discrim_eval", "options": {"max_scenarios": 2}},
            "model": {"kind": "causal_lm", "alternative_prompt": "none", "batch_size": 15}, "audit": {"n_boot": 50}}


@pytest.mark.slow  # a whole causal_lm spec with its repairs
def test_a_spec_scores_interventions_and_a_trigger_on_one_plane(lm: FrozenCausalLM, tmp_path: Path) -> None:
    import json

    import jsonschema

    from factories import run_cli, write_spec
    from fairprompt.decision_run import json_schema

    trigger = torch.randn(3, 576, generator=torch.Generator().manual_seed(3)) * 0.1
    directory = save_decision_trigger(lm, trigger, tmp_path, "trigger", record={"chosen": "lambda_30", "rule": "r"})
    spec = LLM_SPEC | {"model": LLM_SPEC["model"] | {"repairs": {"interventions": ["illegal"],
                                                                 "trigger": str(directory)}}}
    out = tmp_path / "out"
    code, _, err = run_cli("audit", str(write_spec(tmp_path, spec)), "--out", str(out))
    assert code == 0, err
    results = json.loads((out / "results.json").read_text())
    jsonschema.validate(results, json_schema())
    repairs = results["repairs"]
    assert set(repairs["repairs"]) == {"unrepaired", "illegal", "trigger"}
    assert repairs["kinds"] == {"unrepaired": "none", "illegal": "intervention", "trigger": "trigger"}
    assert repairs["trigger"]["tokens"] == 3 and repairs["trigger"]["chosen"] == "lambda_30"
    assert repairs["targets_rule"].startswith("every value")  # 2 scenarios resolve nothing
    assert repairs["repairs"]["unrepaired"]["mean_abs"] == pytest.approx(
        np.mean([abs(e["estimate"]) for e in results["discrimination"]["effects"]]))
    texts = discrim_eval_rows(scenarios="held_out", max_scenarios=2)[0]["text"].tolist()
    expected = with_intervention(lm, INTERVENTIONS["illegal"]).scores(texts, batch_size=15)
    assert repairs["repairs"]["illegal"]["mean_score"] == pytest.approx(expected.mean(), abs=1e-4)
    html = (out / "report.html").read_text()
    assert 'id="repairs"' in html and html.count("<svg") == 2 and "illegal discrimination" in html


@pytest.mark.parametrize(("repairs", "fragments"), [
    ({"interventions": ["ilegal"]}, ("model.repairs.interventions: 'ilegal' is not known", "did you mean 'illegal'")),
    ({"interventions": ["illegal", "illegal"], "trigger": "none"}, ("lists a name twice",)),
    ({"interventions": "none", "trigger": "none"}, ("names no intervention and no trigger",)),
    ({"trigger": "no/such/dir"}, ("no/such/dir/decision_trigger.json does not exist",)),
])
def test_spec_repairs_bad_inputs(tmp_path: Path, repairs: dict, fragments: tuple[str, ...]) -> None:
    """Refused before the model loads: one line, exit 2, nothing written."""
    from factories import assert_user_error, run_cli, write_spec

    out = tmp_path / "out"
    spec = LLM_SPEC | {"model": LLM_SPEC["model"] | {"repairs": repairs}}
    code, _, err = run_cli("--quiet", "audit", str(write_spec(tmp_path, spec)), "--out", str(out))
    assert_user_error(code, err, *fragments)
    assert not (out / "results.json").exists()
