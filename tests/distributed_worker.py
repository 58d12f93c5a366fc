"""One process of the two-process (gloo, CPU) run that ``tests/test_distributed.py`` launches.

Started by ``torchrun`` (or ``accelerate launch``), never collected by pytest
(the name does not start with ``test_``).  Each process loads the saved
classifier, predicts every row through :func:`fairprompt.models.training.predict_logits`
(Accelerate shards the pre-cut batches and gathers the logits), optionally
trains the task prompt for one epoch, and writes ``rank<k>.json`` into the
output directory with what the test checks: its rank, the world size as
Accelerate and torch.distributed see it, the backend, the rows it predicted,
and the gathered probabilities.

Usage: ``distributed_worker.py MODEL_DIR TEXTS_JSON OUT_DIR BATCH_SIZE [--fit]``; with ``--fit`` it
also trains a fresh task prompt (seed 0) for one epoch on labels ``row % 2`` and rank 0 saves it to
``OUT_DIR/trained``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    model_dir, texts_json, out_dir, batch_size = argv[0], argv[1], Path(argv[2]), int(argv[3])
    fit = "--fit" in argv[4:]

    import numpy as np
    import torch
    import torch.distributed as dist
    from accelerate import PartialState

    from fairprompt.models.frozen import state_sha256
    from fairprompt.models.text import FrozenTextClassifier
    from fairprompt.models.training import TrainConfig

    torch.set_num_threads(1)  # two processes on two cores
    texts = json.loads(Path(texts_json).read_text(encoding="utf-8"))
    model = FrozenTextClassifier.load(model_dir)
    rows = model.encode(texts)
    shard: list[int] = []
    probabilities = model.predict_proba(rows, batch_size=batch_size, shard_log=shard)
    # The state that fairprompt's own Accelerator set up (a shared singleton).  Creating it here, after the
    # library did, checks the library's choice; creating it first would fix the choice for the library.
    state = PartialState()

    result = {
        "pid": os.getpid(),
        "rank": state.process_index,
        "local_rank": state.local_process_index,
        "accelerate_world_size": state.num_processes,
        "distributed_type": str(state.distributed_type),
        "device": str(state.device),
        "dist_initialized": dist.is_available() and dist.is_initialized(),
        "dist_world_size": dist.get_world_size() if dist.is_initialized() else 1,
        "dist_rank": dist.get_rank() if dist.is_initialized() else 0,
        "backend": dist.get_backend() if dist.is_initialized() else None,
        "env_world_size": os.environ.get("WORLD_SIZE"),
        "shard": shard,
        "probabilities": np.asarray(probabilities, dtype=np.float64).tolist(),
    }
    if fit:
        # A fresh task prompt on the same backbone (PEFT cannot reload a prompt-learning adapter as trainable).
        model = FrozenTextClassifier.with_task_prompt(
            backbone=model.backbone_path, num_virtual_tokens=int(model.peft_model.peft_config["default"].num_virtual_tokens),
            init="random", seed=0)
        labels = np.arange(len(texts)) % 2
        before = state_sha256(model.encoder)
        prompt_before = model.task_prompt_embedding().detach().clone()
        history = model.fit(train_rows=model.encode(texts, labels=labels), validation_rows=model.encode(texts, labels=labels),
                            config=TrainConfig(max_epochs=1, batch_size=batch_size, seed=0))
        prompt_after = model.task_prompt_embedding().detach()
        result["fit"] = {
            "history_world_size": history.world_size,
            "epochs": len(history.epochs),
            "val_loss": history.epochs[0]["val_loss"] if history.epochs else None,
            "final_mean_gradient_norm": history.final_mean_gradient_norm,
            "backbone_sha256_before": before,
            "backbone_sha256_after": state_sha256(model.encoder),
            "prompt_changed": bool(not torch.equal(prompt_before, prompt_after)),
            "prompt_sha256": state_sha256({"prompt": prompt_after}),
        }
        if state.is_main_process:  # the test recomputes the recorded losses from it in one process
            model.save(out_dir / "trained")

    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"rank{state.process_index}.json"
    tmp = target.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result), encoding="utf-8")
    tmp.replace(target)
    state.wait_for_everyone()
    if dist.is_initialized():
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
