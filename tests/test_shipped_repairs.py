"""Shipped repair artifacts (fairprompt/mitigation/shipped.py, fairprompt/shipped_repairs.py): a finished repair saved
once, loaded instead of trained when a spec's repair has the same key, and said so in the record and the report.

Real parts, cut down: the session's tiny one-layer BERT (tests/conftest.py) as the backbone, the embedded Adult data
with 32 training, 32 validation and 96 test rows, a task prompt trained for one epoch into a scratch cache, and both
repairs with the quick settings of tests/test_mitigate.py.  Every artifact goes to a scratch folder through
``$FAIRPROMPT_REPAIR_ARTIFACTS`` or the ``root`` parameter, never into fairprompt/artifacts/.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from factories import assert_user_error, run_cli, write_spec
from fairprompt.errors import FairpromptError
from fairprompt.mitigation.shipped import ENV_VAR, MANIFEST
from fairprompt.prompts import load_prompt
from fairprompt.results import stable
from fairprompt.shipped_repairs import COMMAND, build, check, main

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one thread (tests/conftest.py)

FAIRIJ_IJ = {"fairij": {"mode": "ij", "selection": "predicted", "utility_budget": 1.0, "max_fraction": 0.1}}
FAIRIJ_APPEND = {"fairij": {"mode": "append", "selection": "predicted", "utility_budget": 1.0, "max_fraction": 0.1,
                            "append_tokens": 2, "append_training": {"max_epochs": 1, "patience": 1}}}
REPROGRAM = {"reprogram": {"tokens": 2, "lambdas": [0, 2], "epochs": 1, "batch_size": 16, "max_accuracy_drop": 1.0}}
HARD = {"reprogram": {"trigger": "hard", "tokens": 2, "lambdas": [0, 2], "epochs": 1, "batch_size": 16,
                      "max_accuracy_drop": 1.0}}
CONDITIONAL = {"reprogram": {"trigger": "conditional", "tokens": 2, "bottleneck": 4, "parameter_budget": 1.0, "anchor": 5,
                             "lambdas": [0, 2], "epochs": 1, "batch_size": 16, "max_accuracy_drop": 1.0}}


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(autouse=True)
def _scratch(shared_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAIRPROMPT_CACHE", str(shared_cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "no-artifacts"))  # nothing shipped unless a test says so


def tiny(backbone: str, mitigations: list) -> dict:
    return {
        "name": "tiny_shipped",
        "data": {"dataset": "adult"},
        "model": {"kind": "frozen_text", "backbone": backbone, "task_prompt": {"tokens": 2},
                  "text": {"exclude": ["fnlwgt", "education-num"]},
                  "splits": {"train": 32, "validation": 32, "test": 96, "seed": 0},
                  "training": {"max_epochs": 1, "patience": 1, "batch_size": 16}, "batch_size": 32},
        "audit": {"sensitive": ["sex", "race"], "n_boot": 20},
        "mitigations": mitigations,
    }


def _cached_task_prompt(spec: Path) -> None:
    """Train the spec's task prompt into the cache (a repair is shipped for a model that is loaded, not trained)."""
    from fairprompt.spec import load_spec
    from fairprompt.tasks import load_task

    load_task(load_spec(spec)).load_model()


def _audit(spec: Path, out: Path, *extra: str) -> dict:
    code, _, err = run_cli("--quiet", "audit", str(spec), "--out", str(out), *extra)
    assert code == 0, err
    return json.loads((out / "results.json").read_text(encoding="utf-8"))


def _without(record: dict, *keys: str) -> dict:
    return stable({k: v for k, v in record.items() if k not in keys})


@pytest.mark.slow  # two whole spec runs (make check skips it)
def test_a_loaded_repair_gives_the_results_of_training_it(tiny_backbone: str, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    spec = write_spec(tmp_path, tiny(tiny_backbone, [FAIRIJ_IJ, REPROGRAM]))
    _cached_task_prompt(spec)
    root = tmp_path / "artifacts"
    folders = build(spec, root=root, use_scratch_cache=False)
    assert len(folders) == 2 and {f.parent for f in folders} == {root}
    monkeypatch.setenv(ENV_VAR, str(root))

    # --fresh trains the task prompt (the same one, from its seed) and so trains the repairs, shipped or not
    trained = _audit(spec, tmp_path / "trained", "--fresh")
    assert all("shipped" not in m for m in trained["mitigations"])
    for folder, record in zip(folders, trained["mitigations"], strict=True):
        manifest = json.loads((folder / MANIFEST).read_text())
        assert manifest["key"] == folder.name and manifest["spec"] == spec.name and manifest["method"] == record["name"]
        assert manifest["trained"]["command"] == COMMAND and manifest["trained"]["seconds"] > 0
        # the builder's test metrics are the training run's after-audit
        assert manifest["test"]["test_accuracy"] == pytest.approx(record["after_model"]["test_accuracy"], abs=1e-12)
        [dp] = [r["value"] for s in record["after"]["slices"] if s["name"] == "sex" for r in s["disparities"]
                if r["metric"] == "demographic_parity_difference" and r["convention"] == "between_groups"]
        assert manifest["test"]["demographic_parity_difference"] == pytest.approx(dp, abs=1e-12)
        assert sum(p.stat().st_size for p in folder.iterdir()) < 2_000_000  # safetensors + JSON, small
        assert not [p for p in folder.iterdir() if p.suffix in (".pt", ".pkl", ".bin")]

    # the task prompt from the cache: the repairs are loaded, with the very record of the run that trained them
    loaded = _audit(spec, tmp_path / "loaded")
    for folder, before, after in zip(folders, trained["mitigations"], loaded["mitigations"], strict=True):
        shipped = after["shipped"]
        assert shipped["loaded"] is True and shipped["key"] == folder.name and shipped["trained_by"] == COMMAND
        assert shipped["spec"] == spec.name and shipped["trained_at"] and shipped["seconds"] > 0
        assert (before["task_prompt"]["source"], after["task_prompt"]["source"]) == ("trained in this run", "cache")
        assert before["task_prompt"]["cache_key"] == after["task_prompt"]["cache_key"]
        # times, the command line, where the task prompt came from and the new block aside
        assert _without(after, "shipped", "command", "task_prompt") == _without(before, "command", "task_prompt")
    assert (tmp_path / "loaded" / "influence.csv").read_bytes() == (tmp_path / "trained" / "influence.csv").read_bytes()
    # the deployed trigger, tensor for tensor (safetensors' metadata order varies between saves, so not the bytes)
    triggers = [load_prompt(tmp_path / run / "reprogram" / "trigger.json") for run in ("trained", "loaded")]
    assert triggers[0].config_dict() == triggers[1].config_dict()
    assert all(torch.equal(a, b) for a, b in zip(triggers[0].state_dict().values(), triggers[1].state_dict().values()))
    html = (tmp_path / "loaded" / "report.html").read_text(encoding="utf-8")
    assert html.count("loaded from the shipped artifact, trained on ") == 2
    assert "loaded from the shipped artifact" not in (tmp_path / "trained" / "report.html").read_text(encoding="utf-8")


@pytest.mark.parametrize("trigger", [HARD, CONDITIONAL], ids=["hard", "conditional"])
def test_append_mode_and_a_hard_trigger_load_as_trained(tiny_backbone: str, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch, trigger: dict) -> None:
    """The other saved forms (FairIJ's appended prompt, a hard trigger's words, a conditional trigger's generator),
    through the method's run: the same decisions at every grid point and the same record as the run objects that
    were shipped."""
    import numpy as np

    from fairprompt.mitigation.registry import RepairContext, TestSplit
    from fairprompt.results import to_jsonable
    from fairprompt.shipped_repairs import ship, train
    from fairprompt.spec import load_spec
    from fairprompt.tasks import load_repairs, load_task

    spec = write_spec(tmp_path, tiny(tiny_backbone, [FAIRIJ_APPEND, trigger]))
    _cached_task_prompt(spec)
    root = tmp_path / "artifacts"
    trained = train(spec)
    for t in trained:
        ship(t, spec_name=spec.name, root=root, command=COMMAND)
    monkeypatch.setenv(ENV_VAR, str(root))
    loaded_spec = load_spec(spec)
    task = load_task(loaded_spec)
    model, training = task.load_model()
    context = RepairContext(task=task, model=model, training=training)
    test = task.splits.test
    rows = task.split_rows(model, test)
    for t, repair in zip(trained, load_repairs(loaded_spec, task), strict=True):
        run = repair.method.run(context, config=repair.config, group=repair.group, settings=repair.settings)
        assert run.shipped is not None and run.shipped["key"] == t.key
        assert [(p.setting, p.chosen) for p in run.grid()] == [(p.setting, p.chosen) for p in t.run.grid()]
        for a, b in zip(t.run.grid(), run.grid(), strict=True):
            assert np.array_equal(task.predict(a.predictor(), rows), task.predict(b.predictor(), rows)), a.setting
        assert run.changed == t.run.changed
        score = task.predict(run.predictor, rows)
        split = TestSplit(y_true=task.y[test], y_pred=(score >= task.threshold).astype(np.int8), score=score,
                          before_score=lambda: task.predict(model, rows))
        ours, theirs = to_jsonable(run.record(split)), to_jsonable(t.run.record(split))
        assert ours.pop("shipped")["loaded"] is True
        assert stable(ours) == stable(theirs)
    assert trained[1].run.result.trigger_description["kind"] == trigger["reprogram"]["trigger"]


def test_the_key_changes_with_what_determines_the_repair(tiny_backbone: str, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from dataclasses import replace

    from fairprompt.mitigation.registry import RepairContext
    from fairprompt.mitigation.shipped import find_for, repair_key
    from fairprompt.spec import load_spec
    from fairprompt.tasks import load_repairs, load_task

    spec = write_spec(tmp_path, tiny(tiny_backbone, [REPROGRAM]))
    loaded = load_spec(spec)
    task = load_task(loaded)
    [repair] = load_repairs(loaded, task)
    task.load_model()  # trains the tiny task prompt when no earlier test has cached it
    model, training = task.load_model()  # loaded from the cache, as a shipped repair requires
    context = RepairContext(task=task, model=model, training=training)

    def key(context: RepairContext = context, config: object = repair.config, group: str = repair.group) -> str:
        return repair_key(context, method=repair.method, config=config, group=group)

    base = key()
    assert key() == base and len(base) == 64
    changed = {
        "seed": key(config=replace(repair.config, seed=1)),
        "lambdas": key(config=replace(repair.config, lambdas=(0.0, 3.0))),
        "group": key(group="race"),
        "threshold": key(context=replace(context, task=replace(task, threshold=0.4))),
        "rows": key(context=replace(context, task=replace(task, splits=replace(task.splits, train=task.splits.train[1:])))),
        "task prompt": key(context=replace(context, training={**training, "cache_key": "0" * 64})),
        "model": key(context=replace(context, model=_nudged(model))),
        "counterfactual": key(config=replace(repair.config, counterfactual=1.0, swap_terms="identity_toxicity")),
    }
    assert base not in changed.values() and len(set(changed.values())) == len(changed), changed
    # options added after repairs were shipped (ReprogramConfig.KEY_OMITS_AT_DEFAULT) are left out of the key at
    # their defaults, so the shipped keys stand: test_the_demo_finds_its_shipped_repairs checks those
    # loading is off where the context says so, or where the model was trained in this run (--fresh)
    root = tmp_path / "root"
    (root / base).mkdir(parents=True)
    (root / base / MANIFEST).write_text("{}")
    monkeypatch.setenv(ENV_VAR, str(root))
    assert find_for(context, method=repair.method, config=repair.config, group=repair.group) == root / base
    assert find_for(replace(context, use_shipped=False), method=repair.method, config=repair.config,
                    group=repair.group) is None
    assert find_for(replace(context, training={**training, "source": "trained in this run"}), method=repair.method,
                    config=repair.config, group=repair.group) is None


def _nudged(model: object) -> object:
    copy = model.adapter_copy()  # type: ignore[attr-defined]
    with torch.no_grad():
        copy.task_parameters()[-1].add_(1e-3)
    return copy


def test_check_confirms_the_shipped_metrics_and_flags_a_mismatch(tiny_backbone: str, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    spec = write_spec(tmp_path, tiny(tiny_backbone, [REPROGRAM]))
    _cached_task_prompt(spec)
    root = tmp_path / "artifacts"
    [folder] = build(spec, root=root, use_scratch_cache=False)
    assert check(spec, root=root, use_scratch_cache=False)
    assert "MISMATCH" not in capsys.readouterr().out
    manifest = json.loads((folder / MANIFEST).read_text())
    manifest["test"]["test_accuracy"] += 0.1
    (folder / MANIFEST).write_text(json.dumps(manifest))
    assert not check(spec, root=root, use_scratch_cache=False)
    assert "test_accuracy" in (out := capsys.readouterr().out) and "MISMATCH" in out
    # building again replaces the spec's copy in place (same key)
    [again] = build(spec, root=root, use_scratch_cache=False)
    assert again == folder and [p.name for p in root.iterdir()] == [folder.name]


def test_a_corrupted_artifact_is_a_one_line_error(tiny_backbone: str, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    spec = write_spec(tmp_path, tiny(tiny_backbone, [FAIRIJ_IJ]))
    _cached_task_prompt(spec)
    root = tmp_path / "artifacts"
    [folder] = build(spec, root=root, use_scratch_cache=False)
    tensors = folder / "fairij_tensors.safetensors"
    tensors.write_bytes(tensors.read_bytes()[:-8] + b"\x00" * 8)
    monkeypatch.setenv(ENV_VAR, str(root))
    code, _, err = run_cli("--quiet", "audit", str(spec), "--out", str(tmp_path / "out"))
    assert_user_error(code, err, str(tensors), "sha256", "rebuild it")


def test_build_refuses_a_spec_whose_task_prompt_is_not_shipped(tiny_backbone: str, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    audits = tmp_path / "audits"
    audits.mkdir()
    spec = write_spec(audits, tiny(tiny_backbone, [REPROGRAM]), "tiny_shipped.yaml")
    with pytest.raises(FairpromptError, match="make artifact-tiny_shipped"):
        build(spec, root=tmp_path / "artifacts")  # a scratch cache: the task prompt is neither cached nor shipped
    assert main(["build", "--audits", str(audits), "--only", "tiny_shipped"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1 and "is neither shipped nor cached" in err
    assert not (tmp_path / "artifacts").exists() and not (tmp_path / "no-artifacts").exists()


@pytest.mark.slow  # loads the real MiniLM and reads adult_income's rows (make check skips it)
def test_the_demo_finds_its_shipped_repairs() -> None:
    """Every repair of audits/adult_income.yaml has a shipped folder under its current key, so `make demo` loads
    them; a change to the spec, the rows, the model or a method's version fails here (rebuild: make
    repair-artifact-adult_income)."""
    from fairprompt.mitigation.registry import RepairContext
    from fairprompt.mitigation.shipped import SHIPPED_REPAIRS, model_was_loaded, read_manifest, repair_key
    from fairprompt.spec import load_spec
    from fairprompt.tasks import load_repairs, load_task

    spec = load_spec(Path(__file__).resolve().parents[1] / "audits" / "adult_income.yaml")
    task = load_task(spec)
    model, training = task.load_model()
    assert model_was_loaded(training)
    context = RepairContext(task=task, model=model, training=training)
    for index, repair in enumerate(load_repairs(spec, task)):
        key = repair_key(context, method=repair.method, config=repair.config, group=repair.group)
        folder = SHIPPED_REPAIRS / key
        assert (folder / MANIFEST).is_file(), f"{repair.name}: no shipped repair for key {key[:12]}"
        manifest = read_manifest(folder)
        assert (manifest["spec"], manifest["mitigation"], manifest["method"]) == ("adult_income.yaml", index,
                                                                                 repair.name)
