"""bench_frontier's rows, model and shared inputs (embeddings, tabular design, FairIJ scores), built lazily once.

The final split is touched only through :meth:`FrontierSetup.split` with ``"final"``, which refuses unless the run
was started with ``--final``: nothing else in the benchmark reads those rows.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from common import log

ROOT = Path(__file__).resolve().parents[1]
SPEC = "audits/adult_income.yaml"
GROUP = "sex"
QUICK_ROWS = {"train": 160, "validation": 120, "test": 200, "final": 200}
MEASURES = {"dp": "demographic_parity", "eo": "equalized_odds"}


def rows_sha256(*arrays: np.ndarray) -> str:
    """One hash of row positions (and labels): what a cached result was computed on."""
    digest = hashlib.sha256()
    for a in arrays:
        digest.update(np.ascontiguousarray(np.asarray(a, dtype=np.int64)).tobytes())
        digest.update(b"|")
    return digest.hexdigest()


@dataclass
class Scores:
    """A model's favourable-class score and 0/1 decision for one split's rows (score None: decisions only)."""

    score: np.ndarray | None
    decision: np.ndarray


class FrontierSetup:
    """The spec's task, frozen model and rows; encodings, embeddings and FairIJ scores on first use."""

    def __init__(self, *, quick: bool, final: bool) -> None:
        from fairprompt.spec import load_spec
        from fairprompt.tasks import load_task

        self.quick, self.final_allowed = quick, final
        self.spec = spec = load_spec(ROOT / SPEC)
        self.task = task = load_task(spec)
        self.model, self.training = task.load_model()
        s = task.splits
        index = {"train": s.train, "validation": s.validation, "test": s.test, "final": s.final}
        if quick:
            index = {k: v[: QUICK_ROWS[k]] for k, v in index.items()}
        self._index = index
        self.threshold = float(spec.model.threshold)
        self.batch_size = int(spec.model.batch_size)
        self.rows_key = rows_sha256(*(np.concatenate([index[k], task.y[index[k]]]) for k in ("train", "validation", "test")))
        self.final_key = rows_sha256(index["final"], task.y[index["final"]]) if final else None
        self.task_prompt_key = task.task_prompt_key()
        self.source = self.training.get("source", "")
        self._rows: dict[str, Any] = {}
        self._embeddings: dict[str, np.ndarray] = {}
        self._tabular: dict[str, np.ndarray] = {}
        self._fairij: dict[str, Any] = {}
        self._base: dict[str, Scores] = {}
        self.embedding_cache: Path | None = None

    # rows ------------------------------------------------------------------------------------------------
    def split(self, name: str) -> np.ndarray:
        """Data-set row positions of split ``name``; the final rows only in a ``--final`` run."""
        if name == "final" and not self.final_allowed:
            raise RuntimeError("the final split is read only behind --final")
        return self._index[name]

    def sizes(self) -> dict[str, int]:
        names = ("train", "validation", "test", "final") if self.final_allowed else ("train", "validation", "test")
        return {k: int(self._index[k].size) for k in names}

    def y(self, split: str) -> np.ndarray:
        return self.task.y[self.split(split)]

    def groups(self, split: str) -> np.ndarray:
        frame = self.task.dataset.frame
        return np.asarray(frame[GROUP].iloc[self.split(split)].astype(str).to_numpy(), dtype=object)

    def rows(self, split: str) -> Any:
        """The split's rows tokenized for the prompt model (with labels)."""
        if split not in self._rows:
            self._rows[split] = self.task.split_rows(self.model, self.split(split))
        return self._rows[split]

    def prompt_scores(self, model: Any, split: str) -> Scores:
        """A prompt model's P(favourable) and its decision at the spec's threshold."""
        score = np.asarray(self.task.predict(model, self.rows(split)), dtype=np.float64)
        return Scores(score=score, decision=(score >= self.threshold).astype(np.int64))

    def base_scores(self, split: str) -> Scores:
        """The un-repaired model's scores (computed once per split)."""
        if split not in self._base:
            self._base[split] = self.prompt_scores(self.model, split)
        return self._base[split]

    # the peers' inputs -----------------------------------------------------------------------------------
    def tabular(self, split: str) -> np.ndarray:
        """Adult's tabular columns as the text shows them (sex and race left out), one-hot / standardised on train
        (:func:`fairprompt.models.tabular_baseline.design`)."""
        if split not in self._tabular:
            from fairprompt.models.tabular_baseline import design

            frame, features = self.task.dataset.frame, self.task.text_info["text_columns"]
            if "design" not in self.__dict__:
                self.design = design(frame, features).fit(frame.iloc[self.split("train")][features])
            x = self.design.transform(frame.iloc[self.split(split)][features])
            self._tabular[split] = x.toarray() if hasattr(x, "toarray") else np.asarray(x, dtype=np.float64)
        return self._tabular[split]

    def embeddings(self, split: str) -> np.ndarray:
        """The frozen MiniLM's mean-pooled embeddings of the split's texts WITHOUT any prompt (cached on disk)."""
        if split in self._embeddings:
            return self._embeddings[split]
        key = rows_sha256(self.split(split))[:16]
        path = self.embedding_cache / f"embeddings-{self.model.backbone_sha256[:12]}-{split}-{key}.npy" \
            if self.embedding_cache else None
        if path is not None and path.exists():
            self._embeddings[split] = np.load(path)
            return self._embeddings[split]
        log(f"embedding the {split} split without a prompt ({self.split(split).size} rows)")
        self._embeddings[split] = values = embed(self.model, self.rows(split), batch_size=self.batch_size)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp.npy")
            np.save(tmp, values)
            tmp.replace(path)
        return values

    def fairij(self, measure: str, *, config: Any) -> Any:
        """FairIJ ``ij`` at ``config`` with the scores kept (once per measure)."""
        if measure not in self._fairij:
            from fairprompt.mitigation import fairij

            log(f"fairij: scoring the training rows ({measure})")
            self._fairij[measure] = fairij(model=self.model, train_rows=self.rows("train"),
                                           validation_rows=self.rows("validation"),
                                           validation_groups=self.groups("validation"), config=config, keep_scores=True)
        return self._fairij[measure]


def embed(model: Any, rows: Any, *, batch_size: int) -> np.ndarray:
    """Mean-pooled last hidden states of the frozen encoder over the attended tokens (no prompt, no head)."""
    import torch

    from fairprompt.models.training import length_sorted_batches

    out = np.zeros((len(rows), int(model.encoder.config.hidden_size)), dtype=np.float32)
    model.eval()
    with torch.no_grad():
        for index in length_sorted_batches(rows.lengths(), batch_size):
            batch = rows.collate(index)
            hidden = model.encoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
            mask = batch["attention_mask"].to(hidden.dtype).unsqueeze(-1)
            out[np.asarray(index)] = ((hidden * mask).sum(1) / mask.sum(1).clamp_min(1.0)).numpy()
    return out


__all__ = ["GROUP", "MEASURES", "QUICK_ROWS", "ROOT", "SPEC", "FrontierSetup", "Scores", "embed", "rows_sha256"]
