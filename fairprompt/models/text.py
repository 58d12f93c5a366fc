"""A frozen Hugging Face text encoder adapted to a task by prompts only.

``FrozenTextClassifier`` is the text ``PromptedModel``: a frozen backbone, a
task adapter (a PEFT prompt-tuning soft prompt plus a classification head),
and any number of extra soft prompts (FairIJ's appended repair tokens, text
fairness triggers).  Every learned token enters the input through one
mechanism, :func:`fairprompt.prompts.insert_tokens`, at the embedding level:
the PEFT task prompt is prepended (where PEFT itself puts it), extra prompts
are inserted where their config says (by default appended after the last real
token, before ``[SEP]``), on padded batches.

Pooling, chosen deliberately: the head reads the **mean of the final hidden
states over every attended position** (virtual tokens included, padding
excluded).  all-MiniLM-L6-v2 was trained as a sentence encoder with mean
pooling, and PEFT places the virtual tokens before ``[CLS]``, so BERT's own
pooler would read the first virtual token rather than ``[CLS]``.

The backbone is frozen at construction (``requires_grad=False``, eval mode,
kept in eval mode while prompts train, so no dropout noise in the objective).
Task adaptation trains only the prompt and the head; a classifier that is
already trained (``task_prompt: none``) is used as it is, fully frozen.

Artifacts: the task adapter is saved with PEFT's ``save_pretrained`` (the head
listed in ``modules_to_save``, safetensors) plus ``fairprompt_model.json``
naming the backbone; :meth:`FrozenTextClassifier.load` restores it with
``PeftModel.from_pretrained``.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from fairprompt.atomic import write_text
from fairprompt.errors import FairpromptError
from fairprompt.models.backbones import backbone_fingerprint, load_failure, quiet_transformers, resolve_backbone
from fairprompt.models.frozen import freeze, state_sha256, total_parameters, trainable_parameters
from fairprompt.models.training import Progress, TrainConfig, TrainHistory, predict_logits, train

MODEL_FILE = "fairprompt_model.json"
MODEL_FORMAT = "fairprompt.text_classifier"
DEFAULT_TRAINING = TrainConfig()


@dataclass(frozen=True)
class TextRows:
    """Tokenized rows ready to batch: ids without padding, labels and weights (a ``BatchSource``)."""

    input_ids: list[list[int]]
    labels: np.ndarray
    weights: np.ndarray
    pad_id: int

    def __len__(self) -> int:
        return len(self.input_ids)

    def lengths(self) -> np.ndarray:
        return np.fromiter((len(ids) for ids in self.input_ids), dtype=np.int64, count=len(self.input_ids))

    def collate(self, indices: Sequence[int]) -> dict[str, torch.Tensor]:
        rows = [self.input_ids[i] for i in indices]
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for j, r in enumerate(rows):
            ids[j, : len(r)] = torch.tensor(r, dtype=torch.long)
            mask[j, : len(r)] = 1
        index = torch.as_tensor(np.asarray(indices, dtype=np.int64))
        return {"input_ids": ids, "attention_mask": mask, "labels": torch.as_tensor(self.labels[index.numpy()]),
                "weights": torch.as_tensor(self.weights[index.numpy()], dtype=torch.float32), "index": index}

    def with_weights(self, weights: np.ndarray) -> TextRows:
        return TextRows(self.input_ids, self.labels, np.asarray(weights, dtype=np.float32), self.pad_id)


class MeanPoolClassifier(nn.Module):
    """Encoder + mean pooling over attended positions + a linear head (the base that PEFT wraps)."""

    def __init__(self, encoder: nn.Module, *, num_labels: int = 2):
        super().__init__()
        self.encoder = encoder
        self.config = encoder.config
        self.classifier = nn.Linear(encoder.config.hidden_size, num_labels)

    def get_input_embeddings(self) -> nn.Module:
        return self.encoder.get_input_embeddings()

    @property
    def device(self) -> torch.device:
        return self.classifier.weight.device if hasattr(self.classifier, "weight") else next(self.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.encoder.parameters()).dtype

    def forward(self, input_ids=None, attention_mask=None, inputs_embeds=None, token_type_ids=None, labels=None,
                output_attentions=None, output_hidden_states=None, return_dict=None, **kwargs):
        from transformers.modeling_outputs import SequenceClassifierOutput

        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask, inputs_embeds=inputs_embeds,
                              token_type_ids=token_type_ids).last_hidden_state
        if attention_mask is None:
            pooled = hidden.mean(dim=1)
        else:
            mask = attention_mask.to(hidden.dtype).unsqueeze(-1)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp_min(1.0)
        logits = self.classifier(pooled)
        loss = nn.functional.cross_entropy(logits, labels) if labels is not None else None
        return SequenceClassifierOutput(loss=loss, logits=logits)


def _load_tokenizer(path: str):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(path)
    except Exception as exc:  # noqa: BLE001 - any loading failure is the user's backbone
        raise load_failure(path, exc) from None


class FrozenTextClassifier(nn.Module):
    """A frozen text encoder plus prompts; see the module docstring."""

    def __init__(self, *, base: nn.Module, tokenizer: Any, backbone: str, backbone_path: str,
                 peft_model: nn.Module | None, task_prompt: Literal["peft", "none"], num_labels: int,
                 max_length: int = 128):
        super().__init__()
        self.base = base
        self.peft_model = peft_model
        self.tokenizer = tokenizer
        self.backbone = backbone
        self.backbone_path = backbone_path
        self.task_prompt = task_prompt
        self.num_labels = num_labels
        self.max_length = max_length
        self.prompts = nn.ModuleList()
        self._word_embeddings = base.get_input_embeddings()

    # construction -----------------------------------------------------------------------------------------
    @classmethod
    def with_task_prompt(cls, *, backbone: str | None = None, num_virtual_tokens: int = 8,
                         init: Literal["text", "random"] = "random", init_text: str | None = None,
                         num_labels: int = 2, seed: int = 0, max_length: int = 128) -> FrozenTextClassifier:
        """A frozen encoder with a fresh PEFT prompt-tuning task prompt and head (to be trained with :meth:`fit`)."""
        from peft import PromptTuningConfig, PromptTuningInit, TaskType, get_peft_model

        if not 1 <= num_virtual_tokens <= 256:
            raise FairpromptError(f"task prompt length {num_virtual_tokens} is out of range; use 8 to 32 virtual tokens")
        if init == "text" and not init_text:
            raise FairpromptError("task_prompt.init is 'text' but task_prompt.init_text is empty; "
                                  "give the text or use init: random")
        path = resolve_backbone(backbone)
        encoder = _load_encoder(path)
        torch.manual_seed(seed)
        base = MeanPoolClassifier(freeze(encoder), num_labels=num_labels)
        config = PromptTuningConfig(
            task_type=TaskType.SEQ_CLS, num_virtual_tokens=num_virtual_tokens,
            prompt_tuning_init=PromptTuningInit.TEXT if init == "text" else PromptTuningInit.RANDOM,
            prompt_tuning_init_text=init_text if init == "text" else None,
            tokenizer_name_or_path=path if init == "text" else None,
            modules_to_save=["classifier"],
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            peft_model = get_peft_model(base, config)
        model = cls(base=base, tokenizer=_load_tokenizer(path), backbone=str(backbone or "all-MiniLM-L6-v2"), backbone_path=path,
                    peft_model=peft_model, task_prompt="peft", num_labels=num_labels, max_length=max_length)
        model._check_frozen()
        return model

    @classmethod
    def from_trained_classifier(cls, *, path: str, max_length: int = 128) -> FrozenTextClassifier:
        """A classifier that is already trained (``AutoModelForSequenceClassification``), used as it is, frozen."""
        from transformers import AutoModelForSequenceClassification

        quiet_transformers()
        resolved = resolve_backbone(path)
        try:
            model = AutoModelForSequenceClassification.from_pretrained(resolved)
        except Exception as exc:  # noqa: BLE001
            raise load_failure(resolved, exc) from None
        freeze(model)
        return cls(base=model, tokenizer=_load_tokenizer(resolved), backbone=str(path), backbone_path=resolved,
                   peft_model=None, task_prompt="none", num_labels=int(model.config.num_labels), max_length=max_length)

    @classmethod
    def load(cls, directory: str | Path, *, trainable: bool = False) -> FrozenTextClassifier:
        """Restore a model saved by :meth:`save` (PEFT adapter + head, or a reference to a trained classifier).

        ``trainable=True`` makes the task prompt and head trainable again (to continue training or
        repair them); the backbone stays frozen either way.
        """
        directory = Path(directory)
        meta_path = directory / MODEL_FILE
        if not meta_path.is_file():
            raise FairpromptError(f"'{directory}' holds no {MODEL_FILE}; give a directory written by FrozenTextClassifier.save")
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            kind, backbone = meta["task_prompt"], meta["backbone"]
        except (ValueError, KeyError) as exc:
            raise FairpromptError(f"'{meta_path}' is not a valid fairprompt model file ({exc}); save the model again") from None
        if kind == "none":
            return cls.from_trained_classifier(path=backbone, max_length=meta.get("max_length", 128))
        from peft import PeftModel

        path = resolve_backbone(backbone)
        encoder = _load_encoder(path)
        hidden = int(encoder.config.hidden_size)
        adapter = _read_adapter_config(directory)
        if int(adapter.get("token_dim") or hidden) != hidden:
            raise FairpromptError(
                f"the task prompt in '{directory}' has {adapter.get('token_dim')}-dim tokens but backbone {backbone!r} "
                f"has {hidden}-dim embeddings; train a task prompt for this backbone"
            )
        base = MeanPoolClassifier(freeze(encoder), num_labels=int(meta.get("num_labels", 2)))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                peft_model = PeftModel.from_pretrained(base, str(directory), is_trainable=False)
        except Exception as exc:  # noqa: BLE001 - safetensors, torch and peft each raise their own types
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            if "safetensor" in type(exc).__name__.lower() or "deserializ" in first.lower():
                raise FairpromptError(f"the adapter weights in '{directory}' are corrupted or not safetensors ({first[:120]}); "
                                      "save the model again") from None
            raise FairpromptError(f"the task prompt in '{directory}' does not fit backbone {backbone!r} ({first[:160]}); "
                                  "train a task prompt for this backbone") from None
        model = cls(base=base, tokenizer=_load_tokenizer(path), backbone=backbone, backbone_path=path,
                    peft_model=peft_model, task_prompt="peft", num_labels=int(meta.get("num_labels", 2)),
                    max_length=int(meta.get("max_length", 128)))
        for parameter in model.task_parameters():  # PEFT refuses is_trainable=True for prompt learning (and
            parameter.requires_grad_(trainable)     # leaves the prompt trainable otherwise): set it ourselves
        model._check_frozen()
        return model

    def save(self, directory: str | Path) -> Path:
        """Write the task adapter (PEFT ``save_pretrained``, safetensors) and ``fairprompt_model.json``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        if self.peft_model is not None:
            card = directory / "README.md"
            had_card = card.exists()
            self.peft_model.save_pretrained(str(directory), safe_serialization=True)
            if not had_card and card.exists():  # PEFT's boilerplate model card: not ours to ship
                card.unlink()
        meta = {"format": MODEL_FORMAT, "task_prompt": self.task_prompt, "backbone": self.backbone,
                "num_labels": self.num_labels, "max_length": self.max_length, "pooling": self.pooling}
        write_text(directory / MODEL_FILE, json.dumps(meta, indent=2) + "\n")
        return directory

    def adapter_copy(self) -> FrozenTextClassifier:
        """A new classifier on the *same* frozen backbone (shared, never copied) and tokenizer.

        The task prompt, head and extra prompts are deep copies with the same values and ``requires_grad``
        flags, so changing the copy's adapter (FairIJ's repairs) leaves this classifier untouched.
        """
        import copy

        memo: dict[int, Any] = {id(self.tokenizer): self.tokenizer}
        for module in self.encoder.modules():
            memo[id(module)] = module
        for tensor in [*self.encoder.parameters(), *self.encoder.buffers()]:
            memo[id(tensor)] = tensor
        clone = copy.deepcopy(self, memo)
        assert clone.encoder is self.encoder and clone._word_embeddings is self._word_embeddings
        return clone

    # structure -----------------------------------------------------------------------------------------------
    @property
    def pooling(self) -> str:
        return "mean over attended positions" if self.task_prompt == "peft" else "the classifier's own"

    @property
    def encoder(self) -> nn.Module:
        """The frozen backbone (for fingerprints)."""
        return self.base.encoder if isinstance(self.base, MeanPoolClassifier) else self.base

    @property
    def backbone_sha256(self) -> str:
        """sha256 of the frozen backbone's whole state_dict."""
        return state_sha256(self.encoder)

    def head(self) -> nn.Module | None:
        """The task head that is trained with the task prompt (PEFT's modules_to_save copy)."""
        if self.peft_model is None:
            return None
        wrapper = self.base.classifier
        return wrapper.modules_to_save["default"] if hasattr(wrapper, "modules_to_save") else wrapper

    def task_prompt_embedding(self) -> nn.Parameter | None:
        if self.peft_model is None:
            return None
        return self.peft_model.prompt_encoder["default"].embedding.weight

    def task_parameters(self) -> list[nn.Parameter]:
        """The task adapter's parameters: the task prompt then the head (what FairIJ differentiates)."""
        if self.peft_model is None:
            return []
        head = self.head()
        assert head is not None
        return [self.task_prompt_embedding(), *head.parameters()]

    def train(self, mode: bool = True) -> FrozenTextClassifier:
        super().train(mode)
        self.encoder.eval()  # the frozen backbone never runs dropout
        if self.task_prompt == "none":
            self.base.eval()
        return self

    def _check_frozen(self) -> None:
        unfrozen = [name for name, p in self.encoder.named_parameters() if p.requires_grad]
        if unfrozen:
            raise RuntimeError(f"backbone parameters are trainable: {unfrozen[:3]}")

    def describe(self) -> dict[str, Any]:
        total = total_parameters(self)
        task = sum(p.numel() for p in self.task_parameters())
        extra = sum(p.numel() for p in self.prompts.parameters())
        return {
            "kind": "frozen_text", "backbone": self.backbone, "backbone_sha256": self.backbone_sha256,
            "backbone_parameters": total_parameters(self.encoder), "task_prompt": self.task_prompt,
            "prompt_tokens": int(self.peft_model.peft_config["default"].num_virtual_tokens) if self.peft_model else 0,
            "task_adapter_parameters": task, "extra_prompt_parameters": extra,
            "trainable_share": (task + extra) / total if total else 0.0, "pooling": self.pooling,
            "max_length": self.max_length,
        }

    # data ------------------------------------------------------------------------------------------------
    def encode(self, texts: Sequence[str], *, labels: np.ndarray | None = None, weights: np.ndarray | None = None) -> TextRows:
        """Tokenize (truncating at ``max_length``) once; labels default to 0, weights to 1."""
        encoded = self.tokenizer(list(texts), truncation=True, max_length=self.max_length, padding=False)
        n = len(texts)
        return TextRows(
            input_ids=encoded["input_ids"],
            labels=np.zeros(n, dtype=np.int64) if labels is None else np.asarray(labels, dtype=np.int64),
            weights=np.ones(n, dtype=np.float32) if weights is None else np.asarray(weights, dtype=np.float32),
            pad_id=int(self.tokenizer.pad_token_id or 0),
        )

    # computation -----------------------------------------------------------------------------------------
    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **_: Any) -> torch.Tensor:
        """Logits of the prompted model: embed, insert every prompt's tokens, run the frozen classifier."""
        from fairprompt.prompts import insert_tokens

        embeds = self._word_embeddings(input_ids)
        mask = attention_mask
        for prompt in self.prompts:
            inserted = prompt.insert(inputs_embeds=embeds, attention_mask=mask)
            embeds, mask = inserted.inputs_embeds, inserted.attention_mask
        if self.peft_model is not None:
            tokens = self.peft_model.get_prompt(batch_size=input_ids.shape[0]).to(embeds.dtype)
            inserted = insert_tokens(inputs_embeds=embeds, attention_mask=mask, tokens=tokens, position="prepend")
            embeds, mask = inserted.inputs_embeds, inserted.attention_mask
        return self.base(inputs_embeds=embeds, attention_mask=mask).logits

    def prompted_inputs(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, *,
                        prompt_rows: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The embeddings and mask the frozen classifier reads: :meth:`forward`'s insertion, step for step.

        ``prompt_rows`` [B, k, d], when given, replaces the task prompt PEFT would prepend (its value
        ``peft_model.get_prompt(B)``), so each row can carry its own copy of the prompt tensor: a leaf with
        ``requires_grad`` then receives exact per-row gradients from one backward pass on a padded batch.
        """
        from fairprompt.prompts import insert_tokens

        embeds = self._word_embeddings(input_ids)
        mask = attention_mask
        for prompt in self.prompts:
            inserted = prompt.insert(inputs_embeds=embeds, attention_mask=mask)
            embeds, mask = inserted.inputs_embeds, inserted.attention_mask
        if self.peft_model is not None:
            if prompt_rows is None:
                tokens = self.peft_model.get_prompt(batch_size=input_ids.shape[0])
            else:
                expected = (input_ids.shape[0], *self.task_prompt_embedding().shape)
                if tuple(prompt_rows.shape) != expected:
                    raise ValueError(f"prompt_rows has shape {tuple(prompt_rows.shape)}; "
                                     f"expected {expected} (one prompt copy per row)")
                tokens = prompt_rows
            inserted = insert_tokens(inputs_embeds=embeds, attention_mask=mask, tokens=tokens.to(embeds.dtype),
                                     position="prepend")
            embeds, mask = inserted.inputs_embeds, inserted.attention_mask
        elif prompt_rows is not None:
            raise FairpromptError("this classifier has no task prompt (task_prompt: none), so prompt_rows cannot replace it")
        return embeds, mask

    def margins_and_features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, *,
                             prompt_rows: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The margin ``z = logit_1 - logit_0`` [B] and the pooled features the head reads [B, d].

        For a two-class task-prompt model only (what FairIJ differentiates).  The features are captured
        at the head's input, so they are exactly what :class:`MeanPoolClassifier` pooled; ``prompt_rows``
        as in :meth:`prompted_inputs`.  ``z`` is a function of the prompt and the head; with the head's
        closed-form derivatives (dz/dW_1 = h, dz/dW_0 = -h, dz/db = (-1, +1)) one backward of ``z.sum()``
        into per-row prompt copies gives the whole per-row Jacobian.
        """
        if self.peft_model is None or not isinstance(self.base, MeanPoolClassifier):
            raise FairpromptError("margins_and_features needs a task prompt and head (task_prompt: peft); "
                                  "this classifier is used as it is")
        if self.num_labels != 2:
            raise FairpromptError(f"margins_and_features needs a two-class task but this one has {self.num_labels} labels")
        embeds, mask = self.prompted_inputs(input_ids, attention_mask, prompt_rows=prompt_rows)
        captured: list[torch.Tensor] = []
        head = self.head()
        handle = head.register_forward_hook(lambda module, args, output: captured.append(args[0]))
        try:
            logits = self.base(inputs_embeds=embeds, attention_mask=mask).logits
        finally:
            handle.remove()
        return logits[:, 1] - logits[:, 0], captured[-1]

    def fit(self, *, train_rows: TextRows, validation_rows: TextRows, config: TrainConfig = DEFAULT_TRAINING,
            progress: Progress | None = None) -> TrainHistory:
        """Train the task prompt and head (the backbone stays frozen); returns the history."""
        if self.peft_model is None:
            raise FairpromptError("this classifier has no task prompt to train (task_prompt: none); audit it as it is")
        head = list(self.head().parameters())
        groups = [{"params": [self.task_prompt_embedding()], "lr": config.lr},
                  {"params": head, "lr": config.head_lr or config.lr}]
        return train(model=self, forward=text_forward, param_groups=groups, train_data=train_rows,
                     validation_data=validation_rows, config=config, progress=progress)

    def predict_proba(self, rows: TextRows | Sequence[str], *, batch_size: int = 64, progress: Progress | None = None,
                      shard_log: list[int] | None = None) -> np.ndarray:
        """Class probabilities [n, num_labels], in row order."""
        data = rows if isinstance(rows, TextRows) else self.encode(rows)
        logits = predict_logits(model=self, forward=text_forward, data=data, batch_size=batch_size, progress=progress,
                                shard_log=shard_log)
        return torch.softmax(torch.from_numpy(logits), dim=-1).numpy()


def text_forward(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Logits of a text model for a collated batch of :class:`TextRows` (the ``forward`` the trainer takes)."""
    return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])


def _load_encoder(path: str) -> nn.Module:
    from transformers import AutoModel

    quiet_transformers()
    try:
        return AutoModel.from_pretrained(path)
    except Exception as exc:  # noqa: BLE001
        raise load_failure(path, exc) from None


def _read_adapter_config(directory: Path) -> dict[str, Any]:
    path = directory / "adapter_config.json"
    if not path.is_file():
        raise FairpromptError(f"'{directory}' holds no adapter_config.json; "
                              "give a directory written by FrozenTextClassifier.save")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise FairpromptError(f"'{path}' is not valid JSON ({exc}); save the model again") from None


def fingerprint(model: FrozenTextClassifier) -> str:
    """The backbone fingerprint used in cache keys."""
    return backbone_fingerprint(model.backbone_path)


__all__ = ["FrozenTextClassifier", "MeanPoolClassifier", "TextRows", "fingerprint", "text_forward", "trainable_parameters"]
