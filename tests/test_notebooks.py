"""The notebooks in notebooks/: executed under the small profile, and committed without outputs.

Each notebook runs in a fresh ``python3`` kernel (nbclient; the kernelspec is looked up in the venv first, and
jupyter_client starts its ``python`` as this interpreter, which the notebooks' summaries confirm) in a temporary
working directory with a temporary cache, ``FAIRPROMPT_NOTEBOOK_PROFILE=small`` and a per-cell timeout.  Its
last cell prints one line, ``NOTEBOOK_SUMMARY {json}``, whose values are checked here.  On an otherwise idle
2-core CPU the four took 118 s (01: 12 s, 02: 47 s, 03: 21 s, 04: 38 s); sharing the cores with other jobs, up
to about 5 minutes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from fairprompt.errors import FairpromptError
from fairprompt.results import load_results

pytestmark = pytest.mark.slow  # executes the four notebooks in a kernel (make check skips it)

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
NAMES = ("01_audit_predictions", "02_fairij_adult", "03_reprogram_colored_digits",
         "04_text_triggers_identity_toxicity")
CELL_TIMEOUT = 300  # seconds per cell; the slowest (FairIJ in 02) takes 20-110 s depending on the load
MARK = "NOTEBOOK_SUMMARY "


def _read(name: str) -> nbformat.NotebookNode:
    return nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)


def _first_code_cell(nb: nbformat.NotebookNode) -> str:
    return next(c.source for c in nb.cells if c.cell_type == "code")


def _venv_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    """Look up the ``python3`` kernelspec in this interpreter's prefix first, before any user-wide one."""
    monkeypatch.setenv("JUPYTER_PATH", str(Path(sys.prefix) / "share" / "jupyter"))


def _run(name: str, workdir: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Execute the notebook in ``workdir`` under the small profile; return its parsed summary line."""
    _venv_kernel(monkeypatch)
    monkeypatch.setenv("FAIRPROMPT_NOTEBOOK_PROFILE", "small")
    monkeypatch.setenv("FAIRPROMPT_CACHE", str(workdir / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("FAIRPROMPT_NOTEBOOK_OUT", raising=False)
    nb = _read(name)
    NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name="python3",
                   resources={"metadata": {"path": str(workdir)}}).execute()
    lines = [line[len(MARK):] for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs
             if out.output_type == "stream" and out.name == "stdout" for line in out.text.splitlines()
             if line.startswith(MARK)]
    assert len(lines) == 1, f"{name} printed {len(lines)} summary lines"
    summary = json.loads(lines[0])
    assert summary["notebook"] == name
    assert summary["profile"] == "small"
    assert Path(summary["prefix"]).resolve() == Path(sys.prefix).resolve()  # the kernel ran this venv's Python
    return summary


# --------------------------------------------------------------------------------------- executed notebooks
def test_01_audit_predictions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = _run("01_audit_predictions", tmp_path, monkeypatch)
    assert 0 < s["rows_audited"] < 9769  # the small profile's rows (the full one audits 9,769)
    assert s["n_boot"] == 200
    assert s["slices"] == ["sex", "race", "sex × race"]
    assert s["groups"]["sex"] == ["Female", "Male"]
    assert {"White", "Black", "Asian-Pac-Islander"} <= set(s["groups"]["race"])
    dp = s["demographic_parity_sex"]
    assert dp["ci_low"] <= dp["value"] <= dp["ci_high"] and dp["value"] > 0
    for metric, value in s["fairprompt"].items():
        assert value == pytest.approx(s["fairlearn"][metric], abs=1e-12)
    assert set(s["passes_four_fifths_race"]) == set(s["groups"]["race"])
    report = Path(s["report"])
    assert report.is_relative_to(tmp_path.resolve()) and report.stat().st_size > 10_000
    assert "Female" in report.read_text(encoding="utf-8")
    results = load_results(s["results"])
    assert [x.name for x in results.audit.slices] == s["slices"]


def test_02_fairij_adult(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = _run("02_fairij_adult", tmp_path, monkeypatch)
    assert s["task_prompt_source"] == "shipped with fairprompt"  # the notebook's spec matches audits/adult_income.yaml
    assert len(s["backbone_sha256"]) == 64 and s["backbone_unchanged"] is True
    assert 0 < s["test_rows"] < 5000
    assert s["scored_rows"] == s["fairij_train_rows"] > 0
    assert s["flagged"] == s["chosen_k"] >= 0
    assert s["validation_gap"]["after"] <= s["validation_gap"]["before"]  # k = 0 always qualifies
    top = s["top_I_F"]
    assert top == sorted(top) and top[0] < 0
    assert s["groups_before"] == s["groups_after"] == ["Female", "Male"]
    assert 0 <= s["dp_sex"]["after"] <= 1 and 0 < s["accuracy"]["after"] <= 1


def test_03_reprogram_colored_digits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = _run("03_reprogram_colored_digits", tmp_path, monkeypatch)
    assert s["fixture_epochs"] < 12  # the small profile's fixture
    assert any((tmp_path / "cache" / "models").iterdir())  # trained now, cached in the temporary cache
    assert len(s["backbone_sha256"]) == 64 and s["backbone_unchanged"] is True
    assert s["test_rows"] == 179  # the final split (181 images) is never read
    assert s["trigger_kind"] == "border" and s["trigger_image_shape"] == [32, 32, 3]
    assert s["trigger_trainable"] == 3 * (32 * 32 - 24 * 24)  # a 4-pixel frame, 3 channels
    assert s["chosen_lambda"] in s["lambdas"] and s["lambdas"][0] == 0
    assert s["groups_before"] == s["groups_after"] == ["green", "red"]
    assert 0 <= s["eo"]["after"] <= 1 and 0 < s["accuracy"]["after"] <= 1


def test_04_text_triggers_identity_toxicity(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = _run("04_text_triggers_identity_toxicity", tmp_path, monkeypatch)
    assert s["task_prompt_source"] == "shipped with fairprompt"
    assert len(s["backbone_sha256"]) == 64 and s["backbone_unchanged"] is True
    assert 0 < s["test_rows"] < 2176
    assert len(s["groups_before"]) == 17 and s["groups_before"] == s["groups_after"]
    assert {"none", "muslim", "gay", "black", "transgender"} <= set(s["groups_before"])
    assert s["soft"]["chosen_lambda"] in s["soft"]["lambdas"] and s["soft"]["trigger_trainable"] == 5 * 384
    words = s["hard"]["words"]
    assert s["hard"]["chosen_lambda"] in s["hard"]["lambdas"]
    assert len(words) == 5 and all(isinstance(w, str) and w and not w.startswith("##") for w in words)
    assert all(0 <= v <= 1 for v in s["harmless_flagged_gap"].values())


# ------------------------------------------------------------------------------ the profile cell, in-process
@pytest.mark.parametrize("name", NAMES)
def test_profile_cell(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """The first code cell reads FAIRPROMPT_NOTEBOOK_PROFILE (default full) and takes every size from SIZES."""
    nb = _read(name)
    intro = nb.cells[0].source  # the first cell documents the profiles
    assert "FAIRPROMPT_NOTEBOOK_PROFILE" in intro and "never results" in intro
    source = _first_code_cell(nb)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FAIRPROMPT_NOTEBOOK_OUT", raising=False)
    monkeypatch.delenv("FAIRPROMPT_NOTEBOOK_PROFILE", raising=False)
    full: dict[str, Any] = {}
    exec(compile(source, f"{name}[profile]", "exec"), full)
    assert full["PROFILE"] == "full" and full["S"] is full["SIZES"]["full"]
    assert set(full["SIZES"]) == {"full", "small"} and set(full["SIZES"]["full"]) == set(full["SIZES"]["small"])
    assert full["OUT"] == Path("out") / name and (tmp_path / "out" / name).is_dir()
    assert "profile: full" in capsys.readouterr().out

    monkeypatch.setenv("FAIRPROMPT_NOTEBOOK_PROFILE", "small")
    monkeypatch.setenv("FAIRPROMPT_NOTEBOOK_OUT", str(tmp_path / "elsewhere"))
    small: dict[str, Any] = {}
    exec(compile(source, f"{name}[profile]", "exec"), small)
    assert small["S"] == small["SIZES"]["small"] and small["OUT"] == tmp_path / "elsewhere" / name
    assert "NOT results" in capsys.readouterr().out


def test_unknown_profile_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FAIRPROMPT_NOTEBOOK_PROFILE", "huge")
    with pytest.raises(FairpromptError, match="FAIRPROMPT_NOTEBOOK_PROFILE is 'huge'; use one of: full, small"):
        exec(compile(_first_code_cell(_read(NAMES[0])), "profile", "exec"), {})


def test_unknown_profile_stops_the_kernel_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Executed in a kernel, the first code cell fails before any work starts."""
    _venv_kernel(monkeypatch)
    monkeypatch.setenv("FAIRPROMPT_NOTEBOOK_PROFILE", "huge")
    nb = _read(NAMES[1])
    client = NotebookClient(nb, timeout=60, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    with pytest.raises(CellExecutionError, match="FAIRPROMPT_NOTEBOOK_PROFILE is 'huge'"):
        client.execute()
    ran = [c for c in nb.cells if c.cell_type == "code" and c.execution_count is not None]
    assert len(ran) == 1 and not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------------ committed notebooks
@pytest.mark.parametrize("name", NAMES)
def test_committed_notebook_is_stripped(name: str) -> None:
    nb = _read(name)
    nbformat.validate(nb)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, \
                f"{name} has outputs; run .venv/bin/python notebooks/strip_outputs.py"
            assert "execution" not in cell.metadata


def test_strip_outputs_script(tmp_path: Path) -> None:
    """strip_outputs.py --check reports an executed notebook (exit 1), strips it in place, then passes."""
    nb = _read(NAMES[0])
    index = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code")
    first = nb.cells[index]
    first.execution_count = 3
    first.outputs = [nbformat.v4.new_output("stream", name="stdout", text="profile: full\n")]
    first.metadata["execution"] = {"iopub.status.busy": "2026-01-01T00:00:00Z"}
    path = tmp_path / "executed.ipynb"
    nbformat.write(nb, path)
    script = [sys.executable, str(NOTEBOOKS / "strip_outputs.py")]

    check = subprocess.run([*script, "--check", str(path)], capture_output=True, text=True)
    assert check.returncode == 1 and "executed.ipynb has outputs" in check.stderr
    assert nbformat.read(path, as_version=4).cells[index].outputs  # --check changed nothing

    stripped = subprocess.run([*script, str(path)], capture_output=True, text=True)
    assert stripped.returncode == 0, stripped.stderr
    assert nbformat.read(path, as_version=4) == _read(NAMES[0])  # back to the committed notebook
    assert subprocess.run([*script, "--check", str(path)], capture_output=True).returncode == 0
