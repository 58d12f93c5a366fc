"""A task prompt for the causal LM: PEFT-format soft tokens trained on labelled rows, the backbone frozen.

:func:`train_task_prompt` tunes ``tokens`` soft tokens (initialised from the embeddings of ``init_text``, as PEFT's
``prompt_tuning_init=TEXT`` does, or of random vocabulary words) with the verbalizer's cross-entropy: the logistic
loss of the log-odds of the favourable answer against the label.  The tokens sit after each row's padding and before
the chat-templated prompt (:meth:`FrozenCausalLM._logits`), with position ids from the attention mask, so a row
scores the same alone and in any batch; only the tokens have gradients.  :func:`save_task_prompt` writes PEFT's own
format (``adapter_config.json`` with ``PromptTuningConfig(task_type=CAUSAL_LM)`` and ``adapter_model.safetensors``),
which ``peft.PeftModel.from_pretrained`` reads; :func:`load_task_prompt` reads it back.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fairprompt.errors import FairpromptError
from fairprompt.models.causal_lm import FrozenCausalLM

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class TaskPromptHistory:
    """What training did: the mean loss of each epoch (epoch 0: before training) and the time it took."""

    tokens: int
    init_text: str | None
    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0


def _initial(lm: FrozenCausalLM, tokens: int, init_text: str | None, seed: int) -> torch.Tensor:
    table = lm.model.get_input_embeddings().weight
    if init_text:
        ids = lm.tokenizer.encode(init_text, add_special_tokens=False)
        if not ids:
            raise FairpromptError("task prompt init_text tokenises to nothing; give a sentence or leave it out")
        ids = (ids * (tokens // len(ids) + 1))[:tokens]  # repeated or cut to the number of tokens, as PEFT does
    else:
        ids = torch.randint(0, table.shape[0], (tokens,), generator=torch.Generator().manual_seed(seed)).tolist()
    return table[torch.tensor(ids)].detach().clone().float()


def train_task_prompt(lm: FrozenCausalLM, *, texts: Sequence[str], labels: Sequence[int] | np.ndarray,
                      tokens: int = 8, init_text: str | None = None, epochs: int = 1, lr: float = 3e-3,
                      batch_size: int = 8, seed: int = 0, progress: Progress | None = None) -> TaskPromptHistory:
    """Tune a task prompt for ``lm`` on labelled rows (module docstring); ``lm.task_prompt`` holds it afterwards."""
    y = np.asarray(labels)
    if len(texts) != y.size or y.size == 0:
        raise FairpromptError(f"task prompt training needs as many labels as texts (got {len(texts)} texts, "
                              f"{y.size} labels)")
    if not set(np.unique(y)) <= {0, 1}:
        raise FairpromptError("task prompt labels are 0 (unfavourable) or 1 (favourable)")
    if tokens < 1 or epochs < 0 or batch_size < 1 or lr <= 0:
        raise FairpromptError("task prompt training needs tokens >= 1, epochs >= 0, batch_size >= 1 and lr > 0")
    start = time.perf_counter()
    previous = lm.task_prompt
    prompt = torch.nn.Parameter(_initial(lm, tokens, init_text, seed))
    lm.task_prompt = prompt
    try:
        encoded = lm.encode(texts)  # counts the soft tokens against the context window
    except FairpromptError:
        lm.task_prompt = previous
        raise
    target = torch.as_tensor(y, dtype=torch.float32)
    optimiser = torch.optim.Adam([prompt], lr=lr)
    rng = np.random.default_rng(seed)

    def mean_loss() -> float:
        with torch.inference_mode():
            total = 0.0
            for s in range(0, len(encoded), batch_size):
                score = lm.score_tensor(encoded[s:s + batch_size]).float()
                total += float(torch.nn.functional.binary_cross_entropy_with_logits(
                    score, target[s:s + batch_size], reduction="sum"))
        return total / len(encoded)

    losses = [mean_loss()]
    steps = epochs * ((len(encoded) + batch_size - 1) // batch_size)
    done = 0
    for _ in range(epochs):
        order = rng.permutation(len(encoded))
        for s in range(0, len(order), batch_size):
            chunk = order[s:s + batch_size]
            score = lm.score_tensor([encoded[i] for i in chunk]).float()
            loss = torch.nn.functional.binary_cross_entropy_with_logits(score, target[chunk])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            done += 1
            if progress:
                progress("training the task prompt", done, steps)
        losses.append(mean_loss())
    lm.task_prompt = prompt.detach()
    return TaskPromptHistory(tokens=tokens, init_text=init_text, losses=losses, seconds=time.perf_counter() - start)


def _peft_config(lm: FrozenCausalLM, tokens: int, init_text: str | None) -> Any:
    from peft import PromptTuningConfig, PromptTuningInit, TaskType

    if init_text:
        return PromptTuningConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=tokens,
                                  prompt_tuning_init=PromptTuningInit.TEXT, prompt_tuning_init_text=init_text,
                                  tokenizer_name_or_path=lm.source.path)
    return PromptTuningConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=tokens,
                              prompt_tuning_init=PromptTuningInit.RANDOM)


def save_task_prompt(lm: FrozenCausalLM, directory: str | Path, *, init_text: str | None = None) -> Path:
    """Write ``lm.task_prompt`` in PEFT's format into ``directory`` (the backbone is not written)."""
    from peft import get_peft_model

    if lm.task_prompt is None:
        raise FairpromptError("this model has no task prompt to save; train one first (train_task_prompt)")
    directory = Path(directory)
    tokens = int(lm.task_prompt.shape[0])
    peft_model = get_peft_model(lm.model, _peft_config(lm, tokens, init_text))
    try:
        with torch.no_grad():
            peft_model.prompt_encoder["default"].embedding.weight.copy_(lm.task_prompt)
        peft_model.save_pretrained(str(directory))
    finally:
        lm.model = peft_model.get_base_model()  # the base model as it was, unwrapped
    return directory


def load_task_prompt(lm: FrozenCausalLM, directory: str | Path) -> torch.Tensor:
    """Read a PEFT prompt-tuning adapter of this model's width from ``directory`` into ``lm.task_prompt``."""
    import json

    from safetensors.torch import load_file

    directory = Path(directory)
    config_path, weights = directory / "adapter_config.json", directory / "adapter_model.safetensors"
    if not config_path.is_file() or not weights.is_file():
        raise FairpromptError(f"'{directory}' holds no PEFT task prompt (adapter_config.json and "
                              "adapter_model.safetensors); give the folder save_task_prompt wrote")
    config = json.loads(config_path.read_text(encoding="utf-8"))
    if config.get("peft_type") != "PROMPT_TUNING" or config.get("task_type") != "CAUSAL_LM":
        raise FairpromptError(f"'{config_path}' is a {config.get('peft_type')} adapter for {config.get('task_type')}; "
                              "give a PROMPT_TUNING adapter for CAUSAL_LM")
    tensor = load_file(str(weights)).get("prompt_embeddings")
    hidden = lm.model.get_input_embeddings().weight.shape[1]
    if tensor is None or tensor.ndim != 2 or tensor.shape[1] != hidden:
        raise FairpromptError(f"'{weights}' does not hold prompt embeddings of width {hidden} (this model's)")
    lm.task_prompt = tensor.float()
    return lm.task_prompt


# ------------------------------------------------------------------------------------------------------ cache
HISTORY_FILE = "training.json"
TRAINER_VERSION = 1


@dataclass(frozen=True)
class CausalLMPromptSettings:
    """How a causal LM's task prompt is trained (part of its cache key)."""

    tokens: int = 8
    init_text: str | None = None
    epochs: int = 1
    lr: float = 3e-3
    batch_size: int = 8
    seed: int = 0


def model_fingerprint(lm: FrozenCausalLM) -> dict[str, Any]:
    """What identifies the frozen model and how it is asked: the GGUF's sha256 (or the path), the prompt, the
    verbalizer."""
    from fairprompt.models.causal_lm_source import gguf_sha256

    source = {"gguf_sha256": gguf_sha256(Path(lm.source.gguf))} if lm.source.gguf else {"path": lm.source.path}
    described = lm.describe()
    return source | {"prompt": described["prompt"], "verbalizer": described["verbalizer"]}


def task_prompt_key(lm: FrozenCausalLM, *, settings: CausalLMPromptSettings, texts: Sequence[str],
                    labels: Sequence[int] | np.ndarray) -> str:
    """The cache key of a task prompt trained with these settings on these rows for this model."""
    from dataclasses import asdict

    from fairprompt.cache import cache_key
    from fairprompt.models.adapt import library_versions

    rows = cache_key({"texts": [str(t) for t in texts], "labels": [int(v) for v in np.asarray(labels)]})
    return cache_key({"trainer": TRAINER_VERSION, "kind": "causal_lm", "model": model_fingerprint(lm),
                      "settings": asdict(settings), "rows": rows, "versions": library_versions()})


def cached_task_prompt(lm: FrozenCausalLM, *, settings: CausalLMPromptSettings, texts: Sequence[str],
                       labels: Sequence[int] | np.ndarray, use_cache: bool = True, use_shipped: bool = True,
                       progress: Progress | None = None) -> dict[str, Any]:
    """Give ``lm`` the task prompt these settings train on these rows: from the cache or the prompts shipped with
    fairprompt when there, else trained now and stored (atomically; a prompt another run stored first is kept).
    Returns its training record (losses, where it came from, the cache key)."""
    import json

    from fairprompt.atomic import replace_dir, write_text
    from fairprompt.cache import cache_dir
    from fairprompt.models.adapt import SHIPPED

    key = task_prompt_key(lm, settings=settings, texts=texts, labels=labels)
    roots = (cache_dir("causal_lm_prompts"), SHIPPED) if use_shipped else (cache_dir("causal_lm_prompts"),)
    for root in roots if use_cache else ():
        found = root / key
        if (found / HISTORY_FILE).is_file():
            try:
                record = json.loads((found / HISTORY_FILE).read_text(encoding="utf-8"))
            except ValueError:
                raise FairpromptError(f"cached training record '{found / HISTORY_FILE}' is corrupted; delete "
                                      f"'{found}' and run again") from None
            load_task_prompt(lm, found)
            origin = "shipped with fairprompt" if root == SHIPPED else "cache"
            return record | {"source": origin, "cache_key": key, "path": str(found)}
    history = train_task_prompt(lm, texts=texts, labels=labels, tokens=settings.tokens, init_text=settings.init_text,
                                epochs=settings.epochs, lr=settings.lr, batch_size=settings.batch_size,
                                seed=settings.seed, progress=progress)
    record = {"losses": history.losses, "seconds": history.seconds, "trained_rows": len(texts)}
    path = None
    if use_cache:
        def fill(staging: Path) -> None:
            save_task_prompt(lm, staging, init_text=settings.init_text)
            write_text(staging / HISTORY_FILE, json.dumps(record, indent=2) + "\n")

        path = replace_dir(cache_dir("causal_lm_prompts"), key, fill, overwrite=False)
    return record | {"source": "trained in this run", "cache_key": key, "path": None if path is None else str(path)}


__all__ = ["CausalLMPromptSettings", "TaskPromptHistory", "cached_task_prompt", "load_task_prompt",
           "model_fingerprint", "save_task_prompt", "task_prompt_key", "train_task_prompt"]
