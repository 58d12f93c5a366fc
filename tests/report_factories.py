"""Results records for the report tests, built the way the pipeline builds them (from real audits of generated
rows), with hostile user strings; and helpers to cut sections and figures out of a rendered page.

Shared by the report, summary, FairIJ, FairReprogram, compliance and browser tests (so that no test module imports
another).
"""

from __future__ import annotations

import base64
import io
import re

import numpy as np
import pandas as pd
from PIL import Image

from fairprompt.metrics import HEADLINE, audit
from fairprompt.results import build_results

SCRIPT = "<script>alert(1)</script>"


ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"


TITLE = 'Hiring <img src=x onerror="alert(2)"> & co'


def text_model(*, backbone: str = "all-MiniLM-L6-v2", example: str = "age: 39. workclass: State-gov.") -> dict:
    """A ``frozen_text`` model block as the pipeline writes it (from a real tiny run)."""
    return {
        "kind": "frozen_text", "backbone": backbone, "backbone_sha256": "92e037d4" + "0" * 56,
        "backbone_parameters": 22713216, "task_prompt": "peft", "prompt_tokens": 8, "task_adapter_parameters": 3842,
        "extra_prompt_parameters": 0, "trainable_share": 3842 / 22717058, "pooling": "mean over attended positions",
        "max_length": 128,
        "text": {"text_columns": ["age", "workclass", SCRIPT], "sensitive_in_text": False, "example": example},
        "splits": {"train": 96, "validation": 48, "test": 300, "rule": "seeded draw stratified by label (seed 0)", "seed": 0},
        "training": {
            "history": {
                "epochs": [
                    {"epoch": 1, "train_loss": 0.5634, "val_loss": 0.5713, "val_accuracy": 0.75, "mean_batch_grad_norm": 0.53},
                    {"epoch": 2, "train_loss": 0.5679, "val_loss": 0.5493, "val_accuracy": 0.75, "mean_batch_grad_norm": 0.59},
                    {"epoch": 3, "train_loss": 0.5402, "val_loss": 0.5511, "val_accuracy": 0.77, "mean_batch_grad_norm": 0.41},
                ],
                "stopped_by": "patience",
                "stopping_rule": "validation loss not improved by more than 0.0001 for 1 epochs, or 5 epochs",
                "best_epoch": 2, "best_val_loss": 0.5493, "final_mean_gradient_norm": 0.0895, "seconds": 7.61,
                "train_rows": 96, "validation_rows": 48, "world_size": 1,
            },
            "source": "cache", "cache_key": "5d322a2b" * 8, "path": f"/cache/{SCRIPT}",
        },
        "threshold": 0.5, "test_accuracy": 0.76, "test_auc": 0.7689,
        "reference": {"kind": "logistic_regression (scikit-learn), same training rows and columns", "train_rows": 96,
                      "test_rows": 300, "test_accuracy": 0.8, "test_auc": 0.8289},
    }


BASELINE_MODEL = {"kind": "logistic_regression", "library": "scikit-learn", "features": ["age", "education"],
                  "sensitive_in_features": False, "train_rows": 900, "test_rows": 300, "threshold": 0.5, "seed": 0,
                  "train_accuracy": 0.8123}


def audit_results(*, scores: bool, n_boot: int = 40, degenerate: bool = False, seed: int = 0, model: dict | None = None) -> dict:
    rng = np.random.default_rng(seed)
    n = 1200
    sex = rng.choice(["Female", "Male"], n, p=[0.35, 0.65])
    race = rng.choice(["White", "Black", SCRIPT, "$x$"], n, p=[0.6, 0.25, 0.1, 0.05]).astype(object)
    race[rng.random(n) < 0.02] = None  # missing attribute: excluded from the race slices, counted
    y = rng.integers(0, 2, n)
    s = np.clip(rng.random(n) * 0.6 + 0.3 * y + 0.15 * (sex == "Male"), 0, 1)
    p = (s > 0.5).astype(int)
    if degenerate:
        y[race == "$x$"] = 1  # no negatives: FPR, TNR, balanced accuracy undefined
        p[race == SCRIPT] = 0  # nobody selected: PPV undefined
    result = audit(y_true=y, y_pred=p, y_score=s if scores else None,
                   sensitive=pd.DataFrame({"sex": sex, "race": race}), n_boot=n_boot, seed=seed)
    return build_results(
        name="t", title=TITLE, audit=result.to_dict(),
        data={"source": f"data/{SCRIPT}.csv", "label": "y", "positive_label": "1", "prediction": "yhat",
              "score": "p" if scores else None, "sensitive": ["sex", "race"], "rows_audited": n, "split": None},
        inputs=[{"role": "predictions", "path": f"data/{SCRIPT}.csv", "sha256": "ab" * 32, "rows": n}],
        seeds={"bootstrap": seed}, command=["fairprompt", "audit", "--name", SCRIPT], created="2025-01-01T00:00:00+00:00",
        model=(model if model is not None
               else text_model(backbone=f"{SCRIPT}-encoder", example=f"name: {SCRIPT}.") if scores else None),
        spec={"name": SCRIPT, "audit": {"n_boot": n_boot}} if scores else None,
    )


def inline_svgs(html: str) -> list[str]:
    return re.findall(r"<svg\b.*?</svg>", html, flags=re.S)


def html_section(html: str, anchor: str) -> str:
    return html.split(f'id="{anchor}"', 1)[1].split("</section>", 1)[0]


IMAGE_MODEL = {
    "kind": "frozen_image", "architecture": {"name": "fixture-cnn", "widths": [16, 32], "hidden": 64, "num_classes": 2},
    "backbone_parameters": 30000, "trainable_parameters": 300, "input_size": [28, 28], "test_accuracy": 0.9,
    "splits": {"train": 1000, "test": 500},
    "training": {"source": "trained in this run",
                 "curve": [{"epoch": 1, "loss": 0.6, "train_accuracy": 0.7, "validation_accuracy": 0.65},
                           {"epoch": 2, "loss": 0.4, "train_accuracy": 0.8, "validation_accuracy": 0.75}],
                 "time_s": 125.0, "cache_key": "ab" * 32},
}




def after_audit(before: dict, seed: int = 1) -> dict:
    """An after-audit of the same rows (different predictions), as the pipeline writes it."""
    rng = np.random.default_rng(seed)
    n = before["n_rows"]
    sex = rng.choice(["Female", "Male"], n, p=[0.35, 0.65])
    race = rng.choice(["White", "Black", SCRIPT, "$x$"], n, p=[0.6, 0.25, 0.1, 0.05]).astype(object)
    y = rng.integers(0, 2, n)
    p = (rng.random(n) * 0.6 + 0.3 * y > 0.45).astype(int)
    return audit(y_true=y, y_pred=p, sensitive=pd.DataFrame({"sex": sex, "race": race}), n_boot=20, seed=seed).to_dict()


def comparison_rows(before: dict, after: dict) -> list[dict]:
    """The ``comparison`` rows of a mitigation entry (the layout of docs/results-schema.md)."""
    def index(a: dict) -> dict:
        out = {(s["name"], d["metric"]): d for s in a["slices"] for d in s["disparities"]
               if d["convention"] == "between_groups" and d["metric"] in HEADLINE}
        for o in a["overall"]:
            if o["metric"] == "accuracy":
                out[("overall", "accuracy")] = o
        return out

    b, a = index(before), index(after)
    return [{"slice": key[0], "metric": key[1], "ideal": a[key].get("ideal", 1.0), "before": b[key]["value"],
             "before_ci_low": b[key]["ci_low"], "before_ci_high": b[key]["ci_high"], "after": a[key]["value"],
             "after_ci_low": a[key]["ci_low"], "after_ci_high": a[key]["ci_high"],
             "change": None if b[key]["value"] is None or a[key]["value"] is None else a[key]["value"] - b[key]["value"]}
            for key in a if key in b]


CURVE = [  # k, predicted dF, predicted dU, actual F, actual U (F0 = 0.21, U0 = 0.52; budget 0.01)
    (0, 0.0, 0.0, 0.21, 0.52), (2, -0.012, 0.001, 0.197, 0.5215), (4, -0.025, 0.003, 0.183, 0.524),
    (7, -0.04, 0.006, 0.171, 0.527), (10, -0.05, 0.009, 0.166, 0.5295), (14, -0.066, 0.014, 0.158, 0.535),
    (20, -0.08, 0.02, None, None),  # a diverged step: no actual values
]


def fairij_record(*, chosen_k: int = 10, mode: str = "ij", top: int = 25) -> dict:
    n = 200
    curve = [{"k": k, "fraction": k / n, "weight_removed": float(k), "predicted_dF": dF, "predicted_dU": dU,
              "actual_F": F, "actual_U": U, "actual_dF": None if F is None else F - 0.21,
              "actual_dU": None if U is None else U - 0.52, "feasible_predicted": dU <= 0.01,
              "feasible_actual": U is not None and U - 0.52 <= 0.01, "chosen": k == chosen_k}
             for k, dF, dU, F, U in CURVE]
    chosen = next(p for p in curve if p["chosen"])
    top_flagged = [{
        "rank": i + 1, "row_id": 1000 + i, "I_F": -0.01 + i * 0.0003, "I_U": 0.0004 * (i % 3), "weight": 0.0,
        "group": SCRIPT if i == 0 else "Female", "groups": {"sex": SCRIPT if i == 0 else "Female", "race": "White"},
        "label": ">50K" if i % 2 else "<=50K", "favourable": bool(i % 2),
        "features": {"age": str(30 + i), "workclass": SCRIPT if i == 0 else "Private", "occupation": None},
    } for i in range(top)]
    return {
        "method": "fairij", "mode": mode, "measure": "demographic_parity", "selection": "actual",
        "rule": "lowest actual validation F after the one-step IJ update among grid points whose actual validation U "
                "rose by at most utility_budget (k = 0 always qualifies; ties go to the smaller k)",
        "weighting": "alpha_i = 1 (row removed) on the top-k rows with I_F < 0, 0 elsewhere", "graded": False,
        "utility_budget": 0.01, "max_fraction": 0.1, "seed": 0, "n_train": n, "chosen_k": chosen_k,
        "chosen_fraction": chosen_k / n, "flagged_rows": chosen_k, "removed_weight": float(chosen_k),
        "predicted_change": {"fairness": chosen["predicted_dF"], "utility": chosen["predicted_dU"]},
        "one_step_change": {"fairness": chosen["actual_dF"], "utility": chosen["actual_dU"]},
        "before": {"fairness": 0.21, "utility": 0.52}, "after": {"fairness": chosen["actual_F"], "utility": chosen["actual_U"]},
        "curve": curve,
        "influence": {"measure": "demographic_parity", "fairness": 0.21, "utility": 0.52,
                      "curvature": "generalised Gauss-Newton (damped Cholesky)", "damping": 0.01,
                      "damping_requested": 0.001, "damping_raised": True, "l2": 0.0, "n": n, "p": 3842,
                      "eigen": {"largest": 2.5, "smallest": 1e-12, "effective_rank": 180, "rank_threshold": 1e-6,
                                "above_damping": 95},
                      "mean_gradient_norm": 0.046, "seconds": 3.2, "jacobian_seconds": 2.9,
                      "fairness_detail": {"gaps": [{"rows": "(all rows)", "group_means": {"Female": 0.11, SCRIPT: 0.32},
                                                    "pair": [SCRIPT, "Female"]}], "smooth": False, "favourable_class": 1}},
        "top_flagged": top_flagged,
        "append": None, "artifacts": {"adapter": "fairij/fairij_adapter", "record": "fairij/fairij.json"},
        "timings": {"scoring_seconds": 3.4, "jacobian_seconds": 2.9, "selection_seconds": 1.25, "repair_seconds": 0.01,
                    "total_seconds": 4.66},
        "verification": None, "split_used_for_selection": "validation",
    }


def fairij_entry(results: dict, **fairij) -> dict:
    after = after_audit(results["audit"])
    f = fairij_record(**fairij)
    return {
        "name": "fairij", "status": "ok",
        "config": {"measure": "demographic_parity", "mode": f["mode"], "utility_budget": 0.01, "max_fraction": 0.1,
                   "group": None, "damping": 0.001, "graded": False, "selection": "actual", "append_tokens": 4,
                   "append_training": {"max_epochs": 10, "patience": 3, "batch_size": 32, "lr": 0.03}, "seed": 0,
                   "verify": False, "verify_epochs": 3},
        "group": "sex", "created": "2025-01-01T00:10:00+00:00", "command": ["fairprompt", "mitigate", "fairij", SCRIPT],
        "before_audit": f"reused from reports/{SCRIPT}/results.json (created 2025-01-01T00:00:00+00:00)",
        "task_prompt": {"source": "cache", "cache_key": "5d322a2b" * 8},
        "fairij": f,
        "flagged_by_group": [
            {"column": "race", "group": "White", "label": 1, "train_rows": 60, "flagged_rows": 3, "removed_weight": 3.0},
            {"column": "sex", "group": "Female", "label": 0, "train_rows": 50, "flagged_rows": 1, "removed_weight": 1.0},
            {"column": "sex", "group": "Female", "label": 1, "train_rows": 20, "flagged_rows": 0, "removed_weight": 0.0},
            {"column": "sex", "group": SCRIPT, "label": 1, "train_rows": 40, "flagged_rows": 9, "removed_weight": 9.0},
        ],
        "after": after,
        "after_model": {"test_rows": 1200, "threshold": 0.5, "test_accuracy": 0.7512, "test_auc": 0.77,
                        "before_test_accuracy": 0.76, "before_test_auc": 0.7689, "accuracy_change": 0.7512 - 0.76,
                        "auc_change": 0.77 - 0.7689, "changed": "task prompt and head (one-step IJ update); backbone frozen",
                        "backbone_sha256": "92e037d4" + "0" * 56, "backbone_unchanged": True},
        "comparison": comparison_rows(results["audit"], after),
        "outputs": {"influence_csv": "influence.csv", "artifact_dir": "fairij",
                    "artifacts": {"adapter": "fairij/fairij_adapter", "record": "fairij/fairij.json"}},
        "seconds": 7.5,
    }


LAMBDAS = (0.0, 1.0, 4.0, 16.0)


POINTS = {  # lambda: selection accuracy, gap, DP, EO, pareto, diverged
    0.0: (0.851, 0.214, 0.214, 0.188, True, None),
    1.0: (0.846, 0.142, 0.142, 0.131, True, None),
    4.0: (0.838, 0.061, 0.061, 0.072, True, None),
    16.0: (0.791, 0.083, 0.083, 0.094, False, f"lambda 16: the loss is not finite at epoch 2 {SCRIPT}"),
}


def png_uri(size: int = 8) -> str:
    """A real tiny PNG: a blue frame around a grey centre, as a data URI."""
    pixels = np.full((size, size, 3), 128, dtype=np.uint8)
    pixels[:2], pixels[-2:], pixels[:, :2], pixels[:, -2:] = (0, 0, 255), (0, 0, 255), (0, 0, 255), (0, 0, 255)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


PNG = png_uri()


def trigger_record(kind: str) -> dict:
    if kind == "hard":
        return {"kind": "hard", "words": ["equal", "fair", SCRIPT, "##ness", "$x$"], "token_ids": [5020, 4189, 100, 2791, 1002],
                "text": f"equal fair {SCRIPT} ##ness $x$"}
    if kind == "soft":
        return {"kind": "soft", "tokens": 3, "dim": 384, "nearest_words": ["neutral", SCRIPT, "[unused7]"],
                "norms": [0.912, 1.204, None]}
    if kind == "conditional":
        return {"kind": "conditional", "tokens": 5, "dim": 384, "bottleneck": 8, "parameters": 20744,
                "norms": [0.9, 1.1, 1.0, 0.8, 1.2]}
    return {"kind": kind, "image_png": PNG, "image_size": [32, 32],
            "config": {"image_size": 32, "width": 4} if kind == "border" else {"patch_size": 8, "corner": "bottom_right"}}


def reprogram_entry(results: dict, *, kind: str = "border", chosen: float = 4.0, rule_met: bool = True) -> dict:
    """A FairReprogram entry as the pipeline writes it (the shape of the mitigation's results record)."""
    after = after_audit(results["audit"], seed=3)
    modality = "image" if kind in ("border", "patch") else "text"
    config = {"trigger": kind, "tokens": 5, "width": 4, "patch_size": 8, "corner": "bottom_right",
              "measure": "demographic_parity", "objective": "adversary", "projection": True, "lambdas": list(LAMBDAS),
              "max_accuracy_drop": 0.02, "epochs": 3, "batch_size": 64, "lr": 0.05, "adversary_lr": 0.01,
              "adversary_hidden": 16, "tuning_split": "train", "max_rows": 2000, "seed": 7}
    points = [{"lambda": lam, "accuracy": a, "gap": g, "demographic_parity_difference": dp, "equalized_odds_difference": eo,
               "history": [{"epoch": e + 1, "task_loss": 0.33 - 0.01 * e, "fairness_loss": 0.02, "seconds": 20.0 + e}
                           for e in range(3 if diverged is None else 1)],
               "diverged": diverged, "epoch_seconds": 21.0 if diverged is None else 20.0, "pareto": pareto,
               "chosen": lam == chosen}
              for lam, (a, g, dp, eo, pareto, diverged) in POINTS.items()]
    parameters = {"trigger_trainable": 1920, "backbone": 22713216, "model_total": 22717828,
                  "trainable_share_of_model": 1920 / 22717828}
    if kind == "hard":
        parameters |= {"deployed_trigger_tokens": 5, "note": "the selector over the candidate words is what trains"}
    warnings = [points[-1]["diverged"]] + ([] if rule_met else ["no lambda > 0 kept the selection accuracy within 0.02"])
    return {
        "name": "reprogram", "status": "ok", "config": config, "group": "sex", "created": "2025-01-01T00:20:00+00:00",
        "command": ["fairprompt", "mitigate", "reprogram", SCRIPT], "before_audit": "computed in this run",
        "task_prompt": {"source": "cache", "cache_key": "5d322a2b" * 8},
        "reprogram": {
            "trigger_kind": kind, "modality": modality, "config": config,
            "rule": "the lambda > 0 with the smallest selection gap among those whose selection accuracy is at most "
                    "max_accuracy_drop below the untriggered model's",
            "rule_met": rule_met, "chosen_lambda": chosen, "points": points,
            "before": {"accuracy": 0.845, "gap": 0.209, "demographic_parity_difference": 0.209,
                       "equalized_odds_difference": 0.167},
            "tuning": {"how": "trained on the training split, chosen on the validation split", "fit_rows": 2000,
                       "selection_rows": 1000, "groups": ["Female", SCRIPT]},
            "parameters": parameters, "trigger": trigger_record(kind), "warnings": warnings, "seconds": 310.2,
            "artifacts": {"trigger": "reprogram/trigger.json"},
        },
        "after": after,
        "after_model": {"test_rows": 1200, "threshold": 0.5, "test_accuracy": 0.842, "test_auc": 0.9,
                        "before_test_accuracy": 0.86, "before_test_auc": 0.91, "accuracy_change": 0.842 - 0.86,
                        "auc_change": -0.01, "changed": "a border trigger added to every input; backbone and adapter frozen",
                        "backbone_sha256": "92e037d4" + "0" * 56, "backbone_unchanged": True, "adapter_unchanged": True},
        "comparison": comparison_rows(results["audit"], after),
        "baselines": [
            {"method": "untriggered model", "description": "the model as audited above", "test_accuracy": 0.86,
             "demographic_parity_difference": 0.19, "equalized_odds_difference": 0.17, "accuracy_change": 0.0},
            {"method": "ThresholdOptimizer (demographic_parity)",
             "description": f"fairlearn, fitted on the validation scores {SCRIPT}",
             "test_accuracy": 0.83, "demographic_parity_difference": 0.04, "equalized_odds_difference": 0.12,
             "accuracy_change": -0.03},
            {"method": f"FairReprogram (lambda {chosen:g})", "description": "the chosen trigger", "test_accuracy": 0.842,
             "demographic_parity_difference": 0.061, "equalized_odds_difference": None, "accuracy_change": -0.018},
        ],
        "outputs": {"artifact_dir": "reprogram", "artifacts": {"trigger": "reprogram/trigger.json",
                                                               "trigger_tensors": "reprogram/trigger.safetensors",
                                                               "record": "reprogram/reprogram.json"}},
        "seconds": 400.0,
    }
