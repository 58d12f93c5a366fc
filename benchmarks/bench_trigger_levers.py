"""Levers of a fairness trigger on Adult (issue [4/7]), on the train and validation rows only: one trigger per call.

    .venv/bin/python benchmarks/bench_trigger_levers.py NAME [--conditional 8] [--objective sq|squ|match|lin|dual]
        [--lam 10] [--anchor 100] [--lr 0.01] [--epochs 4] [--rows 2000] [--measure dp|eo] [--jsonl FILE]

Trains a 5-token trigger (static soft, or ``--conditional R``: a ConditionalPrompt with bottleneck R) in front of
audits/adult_income.yaml's shipped model (backbone, task prompt and head frozen) on the training rows, Adam with a
cosine schedule, and prints (and with ``--jsonl`` appends) one JSON line per epoch: validation accuracy, DP and EO by
sex, the favourable rate.  The test and final rows are never read; this is a development instrument, the numbers
of record come from bench_frontier.py.  Objectives (``sq`` is FairReprogram's surrogate):

- ``sq``: CE + lam * (batch gap)^2, the gap signed (Male minus Female) on the soft decision at ``--temp``;
- ``squ``: CE + lam * gap_A * gap_B over the two halves of the batch (an unbiased estimate of the squared gap:
  the batch's noise adds nothing);
- ``match``: CE + lam * sum over groups of (mean_A p_g - mean_A p0) (mean_B p_g - mean_B p0), p0 the untriggered
  model's favourable probability: each group's mean pulled to the untriggered overall mean (per true label for eo);
- ``lin``: CE + lam * signed gap; ``dual``: the same with lam raised by dual ascent towards ``--target``;
- ``--anchor A`` adds A * (batch mean p - batch mean p0)^2 (the rate anchor).
"""
import argparse
import json
import math
import sys
import time

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent))
import numpy as np
import torch
import torch.nn.functional as F

p = argparse.ArgumentParser()
p.add_argument("name")
p.add_argument("--objective", default="sq")
p.add_argument("--lam", type=float, default=3.0)
p.add_argument("--target", type=float, default=0.08)
p.add_argument("--dual-lr", type=float, default=20.0)
p.add_argument("--temp", type=float, default=1.0)
p.add_argument("--epochs", type=int, default=4)
p.add_argument("--tokens", type=int, default=5)
p.add_argument("--rows", type=int, default=2000)
p.add_argument("--lr", type=float, default=0.03)
p.add_argument("--batch", type=int, default=64)
p.add_argument("--position", default="append")
p.add_argument("--threads", type=int, default=2)
p.add_argument("--measure", default="dp")
p.add_argument("--anchor", type=float, default=0.0)
p.add_argument("--init", default="vocab")
p.add_argument("--conditional", type=int, default=0, help="bottleneck of a conditional trigger (0: static)")
p.add_argument("--up-init", type=float, default=0.0)
p.add_argument("--jsonl", default=None, help="append each epoch's line to this file")
a = p.parse_args()
torch.set_num_threads(a.threads)

from frontier_setup import FrontierSetup  # noqa: E402

from fairprompt.metrics.point import group_gap  # noqa: E402
from fairprompt.mitigation.reprogram_method.config import ReprogramConfig  # noqa: E402
from fairprompt.mitigation.reprogram_method.selection import probabilities, subsample, take  # noqa: E402
from fairprompt.mitigation.reprogram_method.triggers import build  # noqa: E402
from fairprompt.models.training import shuffled_batches  # noqa: E402

setup = FrontierSetup(quick=False, final=False)
model = setup.model
train, val = setup.rows("train"), setup.rows("validation")
tg, vg = setup.groups("train").astype(str), setup.groups("validation").astype(str)
ty, vy = np.asarray(train.labels), np.asarray(val.labels)
if a.rows < len(tg):
    pos = subsample(tg, ty, a.rows, 0)
    train, tg, ty = take(train, pos), tg[pos], ty[pos]
fav = "Male"
codes = torch.as_tensor((tg == fav).astype(np.int64))  # 1 = favoured group

target = build(model, kind="soft", config=ReprogramConfig(tokens=a.tokens))
if a.init == "zero":
    with torch.no_grad():
        target.trigger.weight.mul_(0.0)
if a.conditional:
    from fairprompt.prompts.conditional import ConditionalPrompt, ConditionalPromptConfig
    cond = ConditionalPrompt(ConditionalPromptConfig(n_tokens=a.tokens, dim=target.trigger.weight.shape[1],
                                                     bottleneck=a.conditional, position=a.position),
                             weight=target.trigger.weight.detach())
    if a.up_init:
        with torch.no_grad():
            g = torch.Generator().manual_seed(0)
            cond.up.copy_(torch.randn(cond.up.shape, generator=g) * a.up_init)
            cond.query.copy_(torch.randn(cond.query.shape, generator=g) * 0.1)
    cond.requires_grad_(True)
    target.model.prompts[-1] = cond
    target.trigger = cond
    print("conditional parameters", sum(q.numel() for q in cond.parameters()), flush=True)
elif a.position == "prepend":
    target.trigger.config.position = "prepend"
params = [q for q in target.trigger.parameters() if q.requires_grad]
opt = torch.optim.Adam(params, lr=a.lr)
rng = np.random.default_rng(0)
lengths = train.lengths()
n_batches = math.ceil(len(train) / a.batch)
total = a.epochs * n_batches
sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total) / total)))


def evaluate():
    pv = probabilities(target, val, 128)[:, 1]
    pred = (pv >= 0.5).astype(int)
    return {"acc": float((pred == vy).mean()),
            "dp": group_gap(y_true=vy, y_pred=pred, groups=vg, measure="demographic_parity"),
            "eo": group_gap(y_true=vy, y_pred=pred, groups=vg, measure="equalized_odds"),
            "pos": float(pred.mean())}


with torch.no_grad():
    base_p = torch.as_tensor(probabilities(type(target)(model=model, trigger=torch.nn.Identity(), forward=target.forward,
                                                         modality="text"), train, 128)[:, 1], dtype=torch.float32)
base_rate = float((base_p >= 0.5).float().mean())
print("base rate on tuning rows", base_rate, flush=True)
mu = 0.0 if a.objective == "dual" else a.lam
ema = None
step = 0
start = time.time()
def emit(record: dict) -> None:
    line = json.dumps(record)
    print(line, flush=True)
    if a.jsonl:
        with open(a.jsonl, "a", encoding="utf-8") as out:
            out.write(line + "\n")


emit({"name": a.name, "epoch": 0, **evaluate(), "args": vars(a)})
for epoch in range(1, a.epochs + 1):
    target.model.train()
    for index in shuffled_batches(len(train), a.batch, generator=rng, lengths=lengths):
        batch = train.collate(index)
        labels, g = batch["labels"], codes[batch["index"]]
        logits = target.forward(target.model, batch).float()
        task = F.cross_entropy(logits, labels)
        d = torch.sigmoid((logits[:, 1] - logits[:, 0]) / a.temp)
        if a.measure == "dp":
            sel = [torch.ones_like(labels, dtype=torch.bool)]
        else:
            sel = [labels == 0, labels == 1]
        gaps = []
        for m in sel:
            f1, f0 = (g == 1) & m, (g == 0) & m
            if f1.any() and f0.any():
                gaps.append(d[f1].mean() - d[f0].mean())
        signed = sum(gaps) if gaps else d.sum() * 0
        if a.anchor:
            pt = torch.softmax(logits, dim=1)[:, 1]
            task = task + a.anchor * (pt.mean() - base_p[batch["index"]].mean()).pow(2)
        if a.objective in ("squ", "match"):
            half = torch.arange(len(labels)) % 2 == 0
            parts = []
            for h in (half, ~half):
                if a.objective == "squ":
                    gg = []
                    for m in sel:
                        f1, f0 = (g == 1) & m & h, (g == 0) & m & h
                        gg.append(d[f1].mean() - d[f0].mean() if f1.any() and f0.any() else d.sum() * 0)
                    parts.append(torch.stack(gg))
                else:
                    pt = torch.softmax(logits, dim=1)[:, 1]
                    ref = base_p[batch["index"]]
                    gg = []
                    for m in sel:
                        for code in (0, 1):
                            f = (g == code) & m & h
                            gg.append(pt[f].mean() - ref[m & h].mean() if f.any() else pt.sum() * 0)
                    parts.append(torch.stack(gg))
            loss = task + a.lam * (parts[0] * parts[1]).sum()
        elif a.objective == "sq":
            loss = task + a.lam * signed.pow(2)
        else:
            loss = task + mu * signed
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        step += 1
        if a.objective == "dual":
            hard = (logits[:, 1] > logits[:, 0]).float()
            hg = []
            for m in sel:
                f1, f0 = (g == 1) & m, (g == 0) & m
                if f1.any() and f0.any():
                    hg.append(float(hard[f1].mean() - hard[f0].mean()))
            if hg:
                value = max(hg) if a.measure == "eo" else hg[0]
                ema = value if ema is None else 0.9 * ema + 0.1 * value
                mu = max(0.0, mu + a.dual_lr * (ema - a.target) / n_batches)
    target.model.eval()
    emit({"name": a.name, "epoch": epoch, **evaluate(), "mu": mu, "ema": ema, "s": round(time.time() - start)})
