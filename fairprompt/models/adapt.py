"""Adapting a frozen text model to a task: tune its task prompt once, cache it, reuse it.

:func:`task_text_classifier` returns a :class:`FrozenTextClassifier` whose
task prompt and head are trained on the training rows (stopping on the
validation rows), loading it instead when a matching one is cached.  The cache
key is the sha256 of everything that determines the trained prompt: the exact
training and validation texts and labels (so the data, the text format and the
split), the task-prompt and training settings, the backbone's fingerprint, and
the versions of torch, transformers, peft and fairprompt's trainer.  Cached
prompts live in ``fairprompt.cache.cache_dir("task_prompts", KEY)``; prompts
shipped with fairprompt (``fairprompt/artifacts/task_prompts/KEY``) are found
the same way, so the embedded specs start from the deployed model.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata, resources
from pathlib import Path
from typing import Any

import numpy as np

from fairprompt.atomic import replace_dir, write_text
from fairprompt.cache import cache_dir, cache_key
from fairprompt.errors import FairpromptError
from fairprompt.models.backbones import backbone_fingerprint, resolve_backbone
from fairprompt.models.text import FrozenTextClassifier
from fairprompt.models.training import Progress, TrainConfig

TRAINER_VERSION = 1
"""Bump when a change to the trainer or the model makes old cached prompts stale."""
HISTORY_FILE = "training.json"
SHIPPED = Path(str(resources.files("fairprompt") / "artifacts" / "task_prompts"))


@dataclass(frozen=True)
class TaskPromptSettings:
    """The settings that shape a trained task prompt (the spec's model block, as plain values)."""

    backbone: str = "all-MiniLM-L6-v2"
    tokens: int = 8
    init: str = "random"
    init_text: str | None = None
    max_length: int = 128
    training: TrainConfig = TrainConfig()


def _texts_digest(texts: Sequence[str], labels: np.ndarray) -> str:
    digest = hashlib.sha256()
    for text, label in zip(texts, labels.tolist()):
        digest.update(text.encode("utf-8"))
        digest.update(b"\x1f" + str(int(label)).encode("ascii") + b"\x1e")
    return digest.hexdigest()


def library_versions() -> dict[str, str | None]:
    """The versions of torch, transformers and peft (part of every cache key of a trained prompt)."""
    out: dict[str, str | None] = {}
    for name in ("torch", "transformers", "peft"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def task_prompt_key(*, settings: TaskPromptSettings, train_texts: Sequence[str], train_labels: np.ndarray,
                    validation_texts: Sequence[str], validation_labels: np.ndarray) -> str:
    """The cache key of a task prompt trained with these settings on these rows."""
    training = settings.training
    return cache_key({
        "trainer": TRAINER_VERSION,
        "backbone": backbone_fingerprint(resolve_backbone(settings.backbone)),
        "prompt": {"tokens": settings.tokens, "init": settings.init, "init_text": settings.init_text,
                   "max_length": settings.max_length},
        "training": {k: getattr(training, k) for k in training.__dataclass_fields__},
        "train": _texts_digest(train_texts, train_labels),
        "validation": _texts_digest(validation_texts, validation_labels),
        "versions": library_versions(),
    })


def find_task_prompt(key: str, *, shipped: bool = True) -> Path | None:
    """The folder of the task prompt with cache key ``key``: in the cache, else (``shipped``) among the prompts
    shipped with fairprompt; None when neither has it."""
    for root in (cache_dir("task_prompts"), SHIPPED) if shipped else (cache_dir("task_prompts"),):
        candidate = root / key
        if (candidate / HISTORY_FILE).is_file():
            return candidate
    return None


def _store(model: FrozenTextClassifier, history: dict[str, Any], key: str) -> Path:
    """Save into the cache atomically (:func:`fairprompt.atomic.replace_dir`); a prompt another run stored under
    the same key first is kept."""

    def fill(staging: Path) -> None:
        model.save(staging)
        write_text(staging / HISTORY_FILE, json.dumps(history, indent=2, default=float) + "\n")

    return replace_dir(cache_dir("task_prompts"), key, fill, overwrite=False)


def task_text_classifier(
    *, settings: TaskPromptSettings, train_texts: Sequence[str], train_labels: np.ndarray,
    validation_texts: Sequence[str], validation_labels: np.ndarray, use_cache: bool = True,
    use_shipped: bool = True, progress: Progress | None = None,
) -> tuple[FrozenTextClassifier, dict[str, Any]]:
    """A frozen text classifier with a task prompt trained on these rows (or loaded from the cache).

    ``use_shipped=False`` ignores the prompts shipped with fairprompt (to regenerate
    or check them); ``use_cache=False`` ignores the cache and the shipped prompts.
    Returns the model and its training record (history, stopping rule, final
    mean gradient norm, where it came from, the cache key).
    """
    key = task_prompt_key(settings=settings, train_texts=train_texts, train_labels=train_labels,
                          validation_texts=validation_texts, validation_labels=validation_labels)
    found = find_task_prompt(key, shipped=use_shipped) if use_cache else None
    if found is not None:
        try:
            record = json.loads((found / HISTORY_FILE).read_text(encoding="utf-8"))
        except ValueError:
            raise FairpromptError(f"cached training record '{found / HISTORY_FILE}' is corrupted; "
                                  f"delete '{found}' and run again") from None
        model = FrozenTextClassifier.load(found)
        origin = "shipped with fairprompt" if found.parent == SHIPPED else "cache"
        return model, record | {"source": origin, "cache_key": key, "path": str(found)}
    model = FrozenTextClassifier.with_task_prompt(
        backbone=settings.backbone, num_virtual_tokens=settings.tokens, init=settings.init,  # type: ignore[arg-type]
        init_text=settings.init_text, seed=settings.training.seed, max_length=settings.max_length,
    )
    before = model.backbone_sha256
    train_rows = model.encode(train_texts, labels=train_labels)
    validation_rows = model.encode(validation_texts, labels=validation_labels)
    history = model.fit(train_rows=train_rows, validation_rows=validation_rows, config=settings.training, progress=progress)
    if model.backbone_sha256 != before:  # the guarantee, checked on every run, not only in tests
        raise RuntimeError("the backbone changed during task-prompt training")
    record = {"history": history.to_dict(), "trained_rows": len(train_texts), "validation_rows": len(validation_texts)}
    path: Path | None = None
    if use_cache:
        path = _store(model, record, key)
    return model, record | {"source": "trained in this run", "cache_key": key, "path": None if path is None else str(path)}
