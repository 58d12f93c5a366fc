"""Audits of frozen models from YAML specs, end to end through the CLI, on small real runs.

Real parts: the pretrained all-MiniLM-L6-v2 backbone, the embedded Adult data, the generated
identity_toxicity and colored_digits tasks.  Sizes are cut down (a few dozen training rows, one or
two epochs) so each run takes seconds; the full-size specs in audits/ are exercised by `make demo`
and the benchmarks.  Every bad-input path exits 2 with one line and writes nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from factories import assert_user_error, run_cli, write_spec
from fairprompt.errors import FairpromptError
from fairprompt.spec import load_spec


@pytest.fixture(autouse=True)
def _scratch_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAIRPROMPT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


TINY_ADULT = {
    "name": "tiny_adult",
    "data": {"dataset": "adult"},
    "model": {
        "kind": "frozen_text",
        "task_prompt": {"tokens": 4, "init": "text", "init_text": "Does this person earn more than 50K?"},
        "text": {"exclude": ["fnlwgt", "education-num"]},
        "splits": {"train": 48, "validation": 24, "test": 120, "seed": 0},
        "training": {"max_epochs": 2, "patience": 1, "batch_size": 16},
    },
    "audit": {"sensitive": ["sex", "race"], "n_boot": 50},
}


@pytest.mark.slow  # a whole frozen-text spec, twice
def test_frozen_text_audit_end_to_end_with_cache(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, TINY_ADULT)
    code, _, err = run_cli("--quiet", "audit", str(spec), "--out", str(tmp_path / "out"))
    assert code == 0, err
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    model = results["model"]
    assert model["kind"] == "frozen_text" and model["backbone"] == "all-MiniLM-L6-v2"
    assert model["task_adapter_parameters"] == 4 * 384 + 384 * 2 + 2
    assert model["training"]["source"] == "trained in this run"
    history = model["training"]["history"]
    assert 1 <= len(history["epochs"]) <= 2 and history["final_mean_gradient_norm"] >= 0
    assert model["splits"]["test"] == 120 and results["audit"]["n_rows"] == 120
    assert "sex" not in model["text"]["text_columns"] and "race" not in model["text"]["text_columns"]
    assert model["text"]["example"].startswith("age: ")
    assert 0 <= model["test_accuracy"] <= 1 and 0 <= model["reference"]["test_accuracy"] <= 1
    assert {s["name"] for s in results["audit"]["slices"]} == {"sex", "race", "sex × race"}
    assert (tmp_path / "out" / "report.html").stat().st_size > 1000

    code, _, err = run_cli("--quiet", "audit", str(spec), "--out", str(tmp_path / "again"))
    assert code == 0, err
    again = json.loads((tmp_path / "again" / "results.json").read_text())
    assert again["model"]["training"]["source"] == "cache"
    assert again["model"]["training"]["cache_key"] == model["training"]["cache_key"]
    assert again["audit"]["overall"] == results["audit"]["overall"]

    code, _, err = run_cli("--quiet", "audit", str(spec), "--out", str(tmp_path / "fresh"), "--fresh")
    assert code == 0, err
    fresh = json.loads((tmp_path / "fresh" / "results.json").read_text())
    assert fresh["model"]["training"]["source"] == "trained in this run"
    assert fresh["audit"]["overall"] == results["audit"]["overall"], "same seed, same model"


def test_identity_toxicity_text_column_and_split_column(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, {
        "name": "tiny_toxicity",
        "data": {"dataset": "identity_toxicity", "options": {"n_train": 64, "n_validation": 32, "n_test_per_cell": 4}},
        "model": {"kind": "frozen_text", "text": {"column": "text"}, "splits": {"column": "split"},
                  "training": {"max_epochs": 1, "batch_size": 16}},
        "audit": {"sensitive": ["identity_category"], "n_boot": 20, "counterfactual": {"max_rows": 40}},
    })
    code, _, err = run_cli("--quiet", "audit", str(spec), "--out", str(tmp_path / "out"))
    assert code == 0, err
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["model"]["splits"]["train"] == 64 and results["model"]["text"]["text_column"] == "text"
    assert "reference" not in results["model"]
    assert results["data"]["positive_label"] == "0"
    # the counterfactual audit of the test comments: every comment read is accounted for in each category
    counterfactual = results["counterfactual"]
    assert counterfactual["rows_read"] == 40 and counterfactual["column"] == "text"
    for counts in counterfactual["counts"].values():
        assert counts["swapped"] + counts["no_term"] + counts["several_groups"] + counts["ambiguous"] == 40
    assert {p["category"] for p in counterfactual["pairs"]} <= {"gender", "race", "religion"}
    assert counterfactual["variants"] == sum(p["rows"] for p in counterfactual["pairs"]) > 0
    assert all(0.0 <= p["flip_rate"]["value"] <= 1.0 for p in counterfactual["pairs"])
    assert "Counterfactual audit: identity terms swapped" in (tmp_path / "out" / "report.html").read_text()


@pytest.mark.parametrize(("audit", "fragments"), [
    ({"counterfactual": {"column": "identity"}}, ("audit.counterfactual.column is 'identity'", "reads the column 'text'")),
    ({"counterfactual": {"substitutions": ["gendr"]}}, ("did you mean 'gender'",)),
    ({"counterfactual": {"substitutions": "lists.yaml"}}, ("lists.yaml", "needs two groups or more")),
    ({"counterfactual": {"substitutions": "nothing.yaml"}}, ("match none of the", "test texts read")),
    ({"counterfactual": {"substitutions": "rare.yaml", "max_rows": 3}}, ("match none of the 3 test texts read",)),
])
def test_counterfactual_spec_bad_inputs(tmp_path: Path, audit: dict, fragments: tuple[str, ...]) -> None:
    (tmp_path / "lists.yaml").write_text("sources: {g: s}\ng: {a: [x]}\n")
    (tmp_path / "nothing.yaml").write_text("sources: {g: s}\ng: {a: [zyzzyva], b: [qwertz]}\n")
    # one identity's word only: the 3 comments read (of 68) name another with near certainty, for this seed
    (tmp_path / "rare.yaml").write_text("sources: {g: s}\ng: {a: [lesbian], b: [zyzzyva]}\n")
    spec = {"name": "t", "data": {"dataset": "identity_toxicity", "options": {"n_train": 64, "n_validation": 32,
                                                                             "n_test_per_cell": 4}},
            "model": {"kind": "frozen_text", "text": {"column": "text"}, "splits": {"column": "split"}},
            "audit": {"sensitive": ["identity_category"], **audit}}
    out = tmp_path / "out"
    code, _, err = run_cli("--quiet", "audit", str(write_spec(tmp_path, spec)), "--out", str(out))
    assert_user_error(code, err, *fragments)
    assert not out.exists()


def test_counterfactual_needs_a_text_model(tmp_path: Path) -> None:
    spec = {"name": "t", "data": {"dataset": "adult"}, "model": {"kind": "logistic_regression"},
            "audit": {"counterfactual": {}}}
    code, _, err = run_cli("--quiet", "audit", str(write_spec(tmp_path, spec)), "--out", str(tmp_path / "out"))
    assert_user_error(code, err, "audit.counterfactual swaps words", "frozen_text")


def test_colored_digits_fixture_audit(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, {
        "name": "digits", "data": {"dataset": "colored_digits", "options": {"correlation": 0.9}},
        "model": {"kind": "frozen_image", "backbone": "fixture", "epochs": 2},
        "audit": {"sensitive": ["group"], "n_boot": 50},
    })
    code, _, err = run_cli("--quiet", "audit", str(spec), "--out", str(tmp_path / "out"))
    assert code == 0, err
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["model"]["kind"] == "frozen_image" and results["audit"]["n_rows"] == 179
    assert results["model"]["trainable_parameters"] == 0 and results["model"]["backbone_parameters"] > 100_000


def test_embedded_specs_are_valid() -> None:
    for path in sorted(Path("audits").glob("*.yaml")):
        spec = load_spec(path)
        assert spec.name == path.stem


# ---- bad input: one line, exit 2, nothing written -------------------------------------------------


def _bad(tmp_path: Path, spec: dict, *fragments: str) -> None:
    path = write_spec(tmp_path, spec)
    out = tmp_path / "out"
    code, _, err = run_cli("--quiet", "audit", str(path), "--out", str(out))
    assert_user_error(code, err, *fragments)
    assert not out.exists()


def _with_model(**changes) -> dict:
    spec = json.loads(json.dumps(TINY_ADULT))
    spec["model"].update(changes)
    return spec


def test_unknown_hub_id_offline(tmp_path: Path) -> None:
    _bad(tmp_path, _with_model(backbone="no-such-org/no-such-model"), "no-such-org/no-such-model", "hub id")


def test_missing_backbone_directory(tmp_path: Path) -> None:
    _bad(tmp_path, _with_model(backbone=str(tmp_path / "nowhere")), "nowhere", "does not exist")


def test_spec_relative_data_file_and_backbone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """data.dataset (a file) and a local model.backbone start from the spec's folder; a hub id and the embedded
    names stay as written; the spec itself keeps the paths as written."""
    from fairprompt.tasks import TextTask, load_task

    folder = tmp_path / "specs"
    (folder / "models" / "mine").mkdir(parents=True)
    pd.DataFrame({"text": [f"row {i}" for i in range(40)], "label": [i % 2 for i in range(40)],
                  "group": ["a", "b"] * 20}).to_csv(folder / "rows.csv", index=False)
    spec = {"name": "rel", "data": {"dataset": "rows.csv", "label": "label", "sensitive": ["group"]},
            "model": {"kind": "frozen_text", "backbone": "models/mine", "task_prompt": "none", "text": {"column": "text"},
                      "splits": {"train": 10, "validation": 10, "test": 10}}}
    write_spec(folder, spec)
    monkeypatch.chdir(tmp_path)
    loaded = load_spec("specs/spec.yaml")
    task = load_task(loaded)
    assert isinstance(task, TextTask)
    assert task.dataset.source == str(Path("specs/rows.csv")) and task.backbone == str(Path("specs/models/mine"))
    assert loaded.model_dump(mode="json")["data"]["dataset"] == "rows.csv"
    for backbone in ("org/hub-model", "all-MiniLM-L6-v2"):  # not a folder beside the spec: as written
        spec["model"]["backbone"] = backbone
        write_spec(folder, spec)
        assert load_task(load_spec("specs/spec.yaml")).backbone == backbone
    spec["model"]["backbone"] = "./absent"  # written as a path: looked for beside the spec
    write_spec(folder, spec)
    with pytest.raises(FairpromptError, match=r"model.backbone './absent' does not exist in the spec's folder"):
        load_task(load_spec("specs/spec.yaml"))


def test_missing_text_column(tmp_path: Path) -> None:
    _bad(tmp_path, _with_model(text={"column": "comment"}), "text column 'comment'")


def test_text_columns_misspelled(tmp_path: Path) -> None:
    _bad(tmp_path, _with_model(text={"columns": ["age", "eduction"]}), "'eduction'", "did you mean 'education'")


def test_sensitive_column_in_text_is_refused(tmp_path: Path) -> None:
    _bad(tmp_path, _with_model(text={"columns": ["age", "sex"]}), "'sex' is sensitive")


def test_splits_larger_than_data(tmp_path: Path) -> None:
    _bad(tmp_path, _with_model(splits={"train": 30000, "validation": 3000, "test": 6000}), "splits.train")


def test_unknown_model_kind(tmp_path: Path) -> None:
    _bad(tmp_path, _with_model(kind="frozen_txt"), "model.kind", "did you mean 'frozen_text'")


def test_unknown_training_key(tmp_path: Path) -> None:
    _bad(tmp_path, _with_model(training={"epochs": 3}), "model.training.epochs")


def _images(tmp_path: Path, *, broken: bool = False, missing: bool = False) -> Path:
    from PIL import Image

    folder = tmp_path / "imgs"
    folder.mkdir()
    rows = []
    rng = np.random.default_rng(0)
    for i in range(8):
        name = f"im{i}.png"
        Image.fromarray(rng.integers(0, 255, (12, 12, 3), dtype=np.uint8)).save(folder / name)
        rows.append({"path": name, "label": i % 2, "group": "ab"[i // 4],
                     "split": ["train", "validation", "test", "test"][i % 4]})
    if broken:
        (folder / "im3.png").write_bytes(b"not a png at all")
    if missing:
        rows.append({"path": "gone.png", "label": 0, "group": "a", "split": "test"})
    pd.DataFrame(rows).to_csv(folder / "meta.csv", index=False)
    return folder / "meta.csv"


def _image_spec(meta: Path, backbone: str) -> dict:
    return {"name": "imgs", "data": {"dataset": str(meta), "images": {"image_size": 16}, "sensitive": ["group"]},
            "model": {"kind": "frozen_image", "backbone": backbone, "splits": {"column": "split"}},
            "audit": {"sensitive": ["group"], "n_boot": 0}}


def test_image_that_fails_to_decode(tmp_path: Path) -> None:
    _bad(tmp_path, _image_spec(_images(tmp_path, broken=True), str(tmp_path)), "im3.png")


def test_metadata_pointing_at_missing_files(tmp_path: Path) -> None:
    _bad(tmp_path, _image_spec(_images(tmp_path, missing=True), str(tmp_path)), "gone.png")


def test_users_images_with_a_saved_classifier(tmp_path: Path) -> None:
    from fairprompt.models.image import from_torchvision, save_classifier

    meta = _images(tmp_path)
    model = from_torchvision(name="resnet18", num_classes=2, input_size=16)
    save_classifier(model=model, directory=tmp_path / "clf")
    spec = write_spec(tmp_path, _image_spec(meta, str(tmp_path / "clf")))
    code, _, err = run_cli("--quiet", "audit", str(spec), "--out", str(tmp_path / "out"))
    assert code == 0, err
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["audit"]["n_rows"] == 4


def test_fixture_backbone_needs_colored_digits(tmp_path: Path) -> None:
    _bad(tmp_path, _image_spec(_images(tmp_path), "fixture"), "fixture")


def test_images_block_needs_an_image_model(tmp_path: Path) -> None:
    spec = _image_spec(_images(tmp_path), "fixture")
    spec["model"] = {"kind": "logistic_regression"}
    _bad(tmp_path, spec, "frozen_image")


def test_reference_typo_is_caught_before_training(tmp_path: Path) -> None:
    spec = json.loads(json.dumps(TINY_ADULT))
    spec["audit"]["reference"] = {"sex": "Mal"}
    _bad(tmp_path, spec, "'Mal'", "did you mean 'Male'")
    assert not (tmp_path / "cache").exists(), "nothing was trained or cached"


def test_shipped_task_prompts_match_the_embedded_specs() -> None:
    """Each text spec in audits/ finds its shipped prompt by the key a run computes, so demos never retrain."""
    from fairprompt.models.adapt import SHIPPED
    from fairprompt.shipped import SHIPPED_FILE, prompt_specs
    from fairprompt.tasks import load_task

    specs = prompt_specs(Path("audits"))
    assert {p.stem for p in specs} == {"adult_income", "compas_recidivism", "identity_toxicity"}
    # adult_income_fairij tunes the same prompt as adult_income: it finds the same shipped prompt
    fairij = load_task(load_spec(Path("audits/adult_income_fairij.yaml"))).task_prompt_key()
    assert fairij == load_task(load_spec(Path("audits/adult_income.yaml"))).task_prompt_key()
    for path in specs:
        key = load_task(load_spec(path)).task_prompt_key()
        folder = SHIPPED / key
        assert (folder / SHIPPED_FILE).is_file(), f"{path.name}: no shipped prompt for key {key[:12]}; run make artifacts"
        assert json.loads((folder / SHIPPED_FILE).read_text())["spec"] == path.name
        assert (folder / "adapter_model.safetensors").stat().st_size < 64_000
