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


@pytest.mark.parametrize("mitigations", [[FAIRIJ_IJ, REPROGRAM], [FAIRIJ_APPEND, HARD]], ids=["ij+soft", "append+hard"])
def test_a_loaded_repair_gives_the_results_of_training_it(tiny_backbone: str, tmp_path: Path, mitigations: list,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    spec = write_spec(tmp_path, tiny(tiny_backbone, mitigations))
    _cached_task_prompt(spec)
    trained = _audit(spec, tmp_path / "trained")  # nothing shipped: both repairs train
    assert all("shipped" not in m for m in trained["mitigations"])

    root = tmp_path / "artifacts"
    folders = build(spec, root=root, use_scratch_cache=False)
    assert len(folders) == 2 and {f.parent for f in folders} == {root}
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

    monkeypatch.setenv(ENV_VAR, str(root))
    loaded = _audit(spec, tmp_path / "loaded")
    for folder, before, after in zip(folders, trained["mitigations"], loaded["mitigations"], strict=True):
        shipped = after["shipped"]
        assert shipped["loaded"] is True and shipped["key"] == folder.name and shipped["trained_by"] == COMMAND
        assert shipped["spec"] == spec.name and shipped["trained_at"] and shipped["seconds"] > 0
        # the same record as the run that trained it, times, the command line and the new block aside
        assert _without(after, "shipped", "command") == _without(before, "command")
    for name in ("influence.csv", "fairij/fairij.json"):
        assert (tmp_path / "loaded" / name).read_bytes() == (tmp_path / "trained" / name).read_bytes(), name
    # the deployed trigger, tensor for tensor (safetensors' metadata order varies between saves, so not the bytes)
    triggers = [load_prompt(tmp_path / run / "reprogram" / "trigger.json") for run in ("trained", "loaded")]
    assert triggers[0].config_dict() == triggers[1].config_dict()
    assert all(torch.equal(a, b) for a, b in zip(triggers[0].state_dict().values(), triggers[1].state_dict().values()))
    html = (tmp_path / "loaded" / "report.html").read_text(encoding="utf-8")
    assert html.count("loaded from the shipped artifact, trained on ") == 2
    assert "loaded from the shipped artifact" not in (tmp_path / "trained" / "report.html").read_text(encoding="utf-8")


def test_fresh_runs_and_other_settings_train_instead_of_loading(tiny_backbone: str, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    spec = write_spec(tmp_path, tiny(tiny_backbone, [REPROGRAM]))
    _cached_task_prompt(spec)
    root = tmp_path / "artifacts"
    build(spec, root=root, use_scratch_cache=False)
    monkeypatch.setenv(ENV_VAR, str(root))
    assert _audit(spec, tmp_path / "cached")["mitigations"][0]["shipped"]["loaded"] is True
    # --fresh trains the task prompt and therefore the repair
    assert "shipped" not in _audit(spec, tmp_path / "fresh", "--fresh")["mitigations"][0]
    # another setting of the repair is another key
    other = write_spec(tmp_path, tiny(tiny_backbone, [{"reprogram": {**REPROGRAM["reprogram"], "seed": 1}}]), "other.yaml")
    assert "shipped" not in _audit(other, tmp_path / "other")["mitigations"][0]


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
