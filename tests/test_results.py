"""The typed results record: checked as a whole, written back exactly as read, versioned, with a checked-in schema."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fairprompt.errors import FairpromptError
from fairprompt.metrics import audit
from fairprompt.results import (
    MODEL_KINDS,
    SCHEMA_VERSION,
    Results,
    build_results,
    dumps,
    load_results,
    model_in_words,
    parse_results,
    write_results,
)
from fairprompt.results.model import ImageModel, TabularModel, TextModel
from fairprompt.results.schema import SCHEMA_FILE, json_schema, schema_text
from fairprompt.spec import MODEL_KINDS as SPEC_MODEL_KINDS


@pytest.fixture(scope="module")
def results() -> dict:
    rng = np.random.default_rng(0)
    n = 400
    sex = rng.choice(["F", "M"], n)
    y = rng.integers(0, 2, n)
    score = np.clip(rng.random(n) * 0.7 + 0.2 * y, 0, 1)
    result = audit(y_true=y, y_pred=(score > 0.5).astype(int), y_score=score, sensitive=pd.DataFrame({"sex": sex}),
                   n_boot=20, seed=0)
    return build_results(name="t", audit=result.to_dict(), data={"source": "x.csv", "label": "y", "sensitive": ["sex"]},
                         inputs=[{"role": "predictions", "path": "x.csv", "sha256": "ab" * 32, "rows": n}],
                         seeds={"bootstrap": 0}, created="2026-01-01T00:00:00+00:00",
                         model={"kind": "logistic_regression", "library": "scikit-learn", "features": ["a"],
                                "threshold": 0.5, "train_accuracy": 0.75})


def test_written_back_exactly_as_read(results: dict, tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    write_results(results, path)
    text = path.read_text(encoding="utf-8")
    record = load_results(tmp_path)  # a directory means DIR/results.json
    assert isinstance(record, Results) and isinstance(record.model, TabularModel)
    assert dumps(record.to_json()) == text == dumps(results)
    assert record.audit.slice("sex").groups[0].estimate("for").value == results["audit"]["slices"][0]["groups"][0]["for"]
    assert record.mitigations is None and "mitigations" not in json.loads(text)  # absent stays absent


def test_an_int_stays_an_int_and_nan_is_written_as_null(results: dict) -> None:
    raw = json.loads(dumps(results))
    raw["audit"]["slices"][0]["disparities"][0]["ideal"] = 0
    raw["audit"]["slices"][0]["disparities"][0]["value"] = float("nan")
    record = parse_results(raw)
    again = json.loads(dumps(record.to_json()))
    assert again["audit"]["slices"][0]["disparities"][0]["ideal"] == 0
    assert isinstance(again["audit"]["slices"][0]["disparities"][0]["ideal"], int)
    assert again["audit"]["slices"][0]["disparities"][0]["value"] is None


@pytest.mark.parametrize(("version", "message"), [
    ("abc", "'schema_version' is 'abc', not a whole number"),
    ("1", "'schema_version' is '1', not a whole number"),
    (None, "'schema_version' is null, not a whole number"),
    (True, "'schema_version' is True, not a whole number"),
    (1.0, "'schema_version' is 1.0, not a whole number"),
    (0, r"'schema_version' is 0, not a version \(they start at 1\)"),
    (-1, r"'schema_version' is -1, not a version \(they start at 1\)"),
    (SCHEMA_VERSION + 1, f"schema version {SCHEMA_VERSION + 1}, newer than this fairprompt understands"),
])
def test_versions_other_than_the_current_one_are_refused_naming_the_version(results: dict, tmp_path: Path,
                                                                            version: object, message: str) -> None:
    raw = json.loads(dumps(results))
    raw["schema_version"] = version
    path = tmp_path / "results.json"
    path.write_text(json.dumps(raw), encoding="utf-8")
    with pytest.raises(FairpromptError, match=message) as caught:
        load_results(path)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)
    del raw["schema_version"]
    with pytest.raises(FairpromptError, match="required key 'schema_version' is missing"):
        parse_results(raw)


@pytest.mark.parametrize(("where", "value", "message"), [
    (("audit", "n_rows"), "abc", r"key 'audit.n_rows': Input should be a valid integer \(got 'abc'\)"),
    (("audit", "n_rows"), "5", r"key 'audit.n_rows': Input should be a valid integer \(got '5'\)"),
    (("audit", "slices", 0, "groups", 1, "tpr"), "0.5", r"key 'audit.slices\[0\].groups\[1\].tpr'"),
    (("data", "sensitive"), "sex", r"key 'data.sensitive'"),
    (("model", "kind"), "frozen_txt", r"key 'model'"),
    (("audit", "extra_key"), 1, r"unknown key 'audit.extra_key'"),
])
def test_hand_edits_of_the_wrong_type_are_one_line_errors_naming_the_key(results: dict, where: tuple, value: object,
                                                                         message: str) -> None:
    raw = json.loads(dumps(results))
    target = raw
    for part in where[:-1]:
        target = target[part]
    target[where[-1]] = value
    with pytest.raises(FairpromptError, match=message) as caught:
        parse_results(raw, source="edited.json")
    assert str(caught.value).startswith("edited.json: ") and "\n" not in str(caught.value)


def test_required_keys_and_non_results(results: dict, tmp_path: Path) -> None:
    raw = json.loads(dumps(results))
    del raw["audit"]
    with pytest.raises(FairpromptError, match="required key 'audit' is missing"):
        parse_results(raw)
    with pytest.raises(FairpromptError, match="not a fairprompt results file"):
        parse_results({"title": "x"})
    (tmp_path / "results.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(FairpromptError, match="is not valid JSON"):
        load_results(tmp_path)
    with pytest.raises(FairpromptError, match="does not exist"):
        load_results(tmp_path / "missing")


def test_checked_in_schema_matches_the_models() -> None:
    """Whoever changes the record regenerates the schema (python -m fairprompt.results.schema) and, when the layout
    changes, bumps SCHEMA_VERSION."""
    assert SCHEMA_FILE.read_text(encoding="utf-8") == schema_text(), (
        "fairprompt/results/results.schema.json is stale: run `python -m fairprompt.results.schema`")
    schema = json_schema()
    assert schema["$id"] == f"fairprompt.results/{SCHEMA_VERSION}" and schema["additionalProperties"] is False


def test_the_json_schema_accepts_what_the_models_write(results: dict) -> None:
    import jsonschema

    jsonschema.validate(json.loads(dumps(results)), json_schema())
    bad = json.loads(dumps(results)) | {"unknown": 1}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, json_schema())


def test_one_list_of_model_kinds_and_one_model_in_words() -> None:
    assert MODEL_KINDS == SPEC_MODEL_KINDS == ("logistic_regression", "frozen_text", "frozen_image", "causal_lm")
    text = TextModel(kind="frozen_text", backbone="all-MiniLM-L6-v2", task_prompt="peft", prompt_tokens=8)
    assert model_in_words(text) == "Frozen all-MiniLM-L6-v2 + 8-token soft prompt"
    assert model_in_words(TextModel(kind="frozen_text", backbone="m", task_prompt="none")) == "Frozen m classifier, used as it is"
    assert (model_in_words(ImageModel(kind="frozen_image", architecture={"name": "fixture-cnn"}))
            == "Frozen fixture-cnn classifier")
    assert model_in_words(TabularModel(kind="logistic_regression")) == "Logistic regression (scikit-learn)"
    assert model_in_words(None).startswith("not recorded")
