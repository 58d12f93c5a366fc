"""The output folder of a run (fairprompt.run_folder): one writer at a time (a second run stops at once, naming the
first one's PID), a manifest written last that says which files belong together (a run killed while writing is
named by `fairprompt report`, and not reused by a rerun), no leftovers of dead runs, and an unwritable folder is
one line before any work.  Real processes throughout: a second process holds the lock, a run is killed with
SIGKILL while writing."""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from factories import assert_user_error, run_cli, write_spec
from fairprompt.run_folder import LOCK_FILE, MANIFEST_FILE, hold, verify

RUN_FILES = ["compliance.html", "metrics_by_group.csv", "report.html", "results.json"]


@pytest.fixture()
def predictions(tmp_path: Path) -> Path:
    rng = np.random.default_rng(5)
    n = 300
    frame = pd.DataFrame({"y": rng.integers(0, 2, n), "p": rng.integers(0, 2, n), "g": rng.choice(["a", "b"], n)})
    path = tmp_path / "preds.csv"
    frame.to_csv(path, index=False)
    return path


def audit_args(predictions: Path, out: Path, *, seed: int = 0) -> list[str]:
    return ["--quiet", "audit", "--predictions", str(predictions), "--label", "y", "--prediction", "p", "--sensitive", "g",
            "--n-boot", "20", "--seed", str(seed), "--out", str(out)]


def audited(predictions: Path, out: Path, *, seed: int = 0) -> Path:
    code, _, err = run_cli(*audit_args(predictions, out, seed=seed))
    assert code == 0, err
    return out


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def contents(folder: Path) -> dict[str, str]:
    """The sha256 of every file of the folder but the hidden ones."""
    return {p.name: sha256(p) for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")}


def dotfiles(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.fixture()
def held(tmp_path: Path) -> Iterator[Callable[[Path], subprocess.Popen]]:
    """``held(folder)``: another process holding ``folder``'s lock (through fairprompt.run_folder.hold) until the
    test ends."""
    holders: list[subprocess.Popen] = []

    def start(folder: Path) -> subprocess.Popen:
        script = ("import sys\nfrom fairprompt.run_folder import hold\nwith hold(sys.argv[1]):\n"
                  "    print('held', flush=True)\n    sys.stdin.readline()\n")
        proc = subprocess.Popen([sys.executable, "-c", script, str(folder)], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True)
        holders.append(proc)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        return proc

    yield start
    for proc in holders:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=30)


# What a run writes -------------------------------------------------------------------------------------------------

def test_a_run_ends_with_a_manifest_of_its_files_and_leaves_no_lock(predictions: Path, tmp_path: Path) -> None:
    out = audited(predictions, tmp_path / "out")
    manifest = json.loads((out / MANIFEST_FILE).read_text())
    assert manifest["format"] == "fairprompt.manifest" and manifest["complete"] is True
    from fairprompt import __version__

    assert manifest["fairprompt_version"] == __version__
    assert manifest["files"] == {name: sha256(out / name) for name in RUN_FILES}
    assert dotfiles(out) == []  # the lock file is removed when the run lets go
    check = verify(out)
    assert check.has_manifest and check.stale == () and check.complete


# One writer at a time ----------------------------------------------------------------------------------------------

def test_a_second_run_into_a_folder_in_use_stops_at_once_naming_the_pid(predictions: Path, tmp_path: Path,
                                                                         held: Callable[[Path], subprocess.Popen]) -> None:
    out = audited(predictions, tmp_path / "out")
    before = contents(out)
    holder = held(out)
    leftover = out / ".results.json.abcd1234.tmp"  # the holder's own temporary file, as if it were writing
    leftover.write_text("partial")
    code, _, err = run_cli(*audit_args(predictions, out, seed=1))
    assert_user_error(code, err, f"{out} is in use by another fairprompt run (PID {holder.pid})",
                      "wait for it to finish or choose another --out")
    code, _, err = run_cli("report", str(out))
    assert_user_error(code, err, f"(PID {holder.pid})", "wait for it to finish")
    assert contents(out) == before  # nothing of the second run was written
    assert leftover.is_file()  # a live writer's temporary files are never removed by another run


def test_a_run_that_fails_on_its_inputs_leaves_no_folder_and_no_lock(tmp_path: Path) -> None:
    out = tmp_path / "new" / "out"
    code, _, err = run_cli("audit", "--predictions", str(tmp_path / "missing.csv"), "--label", "y", "--prediction", "p",
                           "--sensitive", "g", "--out", str(out))
    assert code == 2, err
    assert not (tmp_path / "new").exists()


# A run killed while writing ----------------------------------------------------------------------------------------

KILLED_WHILE_WRITING = """
import os, signal, sys
real_replace = os.replace
def replace(src, dst, *args, **kwargs):
    if os.path.basename(str(dst)) == sys.argv[1]:
        os.kill(os.getpid(), signal.SIGKILL)  # the new file is written beside its target, not yet renamed
    return real_replace(src, dst, *args, **kwargs)
os.replace = replace
from fairprompt.cli import cli
cli(sys.argv[2:], obj={})
"""


def killed_while_writing(name: str, args: list[str]) -> None:
    proc = subprocess.run([sys.executable, "-c", KILLED_WHILE_WRITING, name, *args], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == -9, proc.stderr


def test_report_names_what_a_killed_run_left_stale_and_a_rerun_cleans_up(predictions: Path, tmp_path: Path) -> None:
    """Killed after writing results.json and metrics_by_group.csv, before report.html: the folder mixes the two
    runs; `fairprompt report` re-renders the page it writes and names the other stale file; the rerun removes
    the dead run's temporary file and lock, and its manifest matches every file."""
    out = audited(predictions, tmp_path / "out")
    old_report = sha256(out / "report.html")
    killed_while_writing("report.html", audit_args(predictions, out, seed=1))
    assert sha256(out / "report.html") == old_report  # the older run's page beside the new results.json
    assert any(n.startswith(".report.html.") and n.endswith(".tmp") for n in dotfiles(out))  # and its lock file
    check = verify(out)
    assert check.stale == ("compliance.html", "report.html") and not check.complete
    assert LOCK_FILE in dotfiles(out)  # the dead run's lock file: held by no one, so it does not block the next run

    code, stdout, err = run_cli("report", str(out), "--format", "compliance")
    assert code == 0, err
    assert str(out / "compliance.html") in stdout
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning: report.html in ") and "does not match" in lines[0], err
    assert verify(out).stale == ("report.html",)  # compliance.html re-rendered and entered into the manifest

    audited(predictions, out, seed=1)
    assert dotfiles(out) == []  # the dead run's temporary file and lock file are gone
    check = verify(out)
    assert check.stale == () and check.complete and sorted(check.files) == RUN_FILES


def test_report_refuses_a_results_json_that_does_not_match_the_manifest(predictions: Path, tmp_path: Path) -> None:
    out = audited(predictions, tmp_path / "out")
    killed_while_writing("results.json", audit_args(predictions, out, seed=1))
    before = contents(out)
    code, _, err = run_cli("report", str(out))
    assert_user_error(code, err, f"{out / 'results.json'} does not match {out / MANIFEST_FILE}",
                      "stopped while writing", f"run the audit again into {out}")
    assert contents(out) == before  # nothing rendered
    assert dotfiles(out) == []  # but the dead run's temporary file and lock file are gone


def test_a_damaged_manifest_is_not_trusted(predictions: Path, tmp_path: Path) -> None:
    out = audited(predictions, tmp_path / "out")
    (out / MANIFEST_FILE).write_text("{not json")
    code, _, err = run_cli("report", str(out))
    assert_user_error(code, err, f"{out / MANIFEST_FILE} is damaged", "run the audit again")


# fairprompt report keeps the folder whole ---------------------------------------------------------------------------

def test_report_enters_what_it_writes_into_the_manifest(predictions: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    out = audited(predictions, tmp_path / "out")
    chromium = tmp_path / "fake-chromium"
    chromium.write_text('#!/bin/sh\nfor a in "$@"; do case "$a" in --print-to-pdf=*) '
                        'printf "%%PDF-1.4 fake" > "${a#--print-to-pdf=}";; esac; done\n')
    chromium.chmod(chromium.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("FAIRPROMPT_CHROMIUM", str(chromium))
    (out / "report.html").write_text("edited by hand")
    code, _, err = run_cli("report", str(out), "--pdf")
    assert code == 0 and err == "", err
    check = verify(out)
    assert check.stale == () and check.complete
    assert check.files["report.html"] == sha256(out / "report.html") and check.files["report.pdf"] == sha256(out / "report.pdf")

    audited(predictions, out, seed=1)  # a new results.json: the PDF printed from the old one goes
    assert not (out / "report.pdf").exists() and sorted(verify(out).files) == RUN_FILES


def test_a_folder_without_manifest_still_renders(predictions: Path, tmp_path: Path) -> None:
    """Folders written before manifests existed are not verified, and not given a manifest they cannot vouch for."""
    out = audited(predictions, tmp_path / "out")
    (out / MANIFEST_FILE).unlink(missing_ok=True)
    code, stdout, err = run_cli("report", str(out))
    assert code == 0 and err == "", err
    assert str(out / "report.html") in stdout and not (out / MANIFEST_FILE).exists()


# Resume reuses only what matches the manifest ---------------------------------------------------------------------

def test_resume_reuses_only_files_that_match_the_manifest(tmp_path: Path) -> None:
    from fairprompt.results import dumps, parse_results
    from fairprompt.resume import reusable_record, reusable_results
    from report_factories import audit_results, text_model

    results = parse_results(audit_results(scores=True, model=text_model())).to_json()
    spec = results["spec"]
    out = tmp_path / "out"
    record = {"name": "fairij", "status": "ok", "group": "sex", "config": {"k": 1},
              "outputs": {"influence_csv": "influence.csv", "artifact_dir": "fairij"}}
    repair = SimpleNamespace(name="fairij", group="sex", settings={"k": 1})
    (out / "fairij").mkdir(parents=True)
    (out / "fairij" / "fairij.json").write_text("{}")
    (out / "influence.csv").write_text("row_id\n1\n")
    with hold(out) as folder:
        folder.write_step({"results.json": dumps(results), "metrics_by_group.csv": "slice,group\n"},
                          keep=["influence.csv", "fairij"])
    assert reusable_results(out, spec) is not None and reusable_record(record, repair, out)

    (out / "fairij" / "fairij.json").write_text('{"another": "run"}')  # a repair's file from another run
    assert reusable_results(out, spec) is not None and not reusable_record(record, repair, out)
    (out / "metrics_by_group.csv").write_text("slice,group\nx,y\n")
    assert reusable_results(out, spec) is None  # the before-audit's files do not belong together: recompute

    (out / MANIFEST_FILE).unlink()  # an older fairprompt's folder: reused as before
    assert reusable_results(out, spec) is not None and reusable_record(record, repair, out)


# Writable before any work -------------------------------------------------------------------------------------------

def test_out_that_is_a_file_is_one_line(predictions: Path, tmp_path: Path) -> None:
    taken = tmp_path / "taken"
    taken.write_text("not a folder")
    spec = write_spec(tmp_path, {"name": "x", "output": str(taken), "audit": {"sensitive": ["g"], "n_boot": 20},
                                 "predictions": {"path": str(predictions), "label": "y", "prediction": "p"}})
    code, _, err = run_cli("audit", str(spec))
    assert_user_error(code, err, f"the output folder {taken} is a file")
    code, _, err = run_cli(*audit_args(predictions, taken / "sub"))
    assert_user_error(code, err, f"cannot create the output folder {taken / 'sub'}", "Not a directory")
    assert taken.read_text() == "not a folder"


def _read_only_runner() -> Callable[[list[str]], subprocess.CompletedProcess]:
    """Run the CLI in a process for which a folder with mode 0555 really is read-only (root drops its capability to
    override file permissions); skips where that cannot be arranged."""
    libc = ctypes.CDLL(None, use_errno=True)

    def drop_override() -> None:
        for capability in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
            if libc.prctl(24, capability, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
                raise OSError(ctypes.get_errno(), "prctl")

    preexec = drop_override if os.geteuid() == 0 else None
    probe = Path(tempfile.mkdtemp())
    probe.chmod(0o555)
    try:
        written = subprocess.run(["sh", "-c", f"touch {probe}/x"], preexec_fn=preexec, capture_output=True).returncode == 0
    except subprocess.SubprocessError:
        written = True
    finally:
        probe.chmod(0o755)
        shutil.rmtree(probe)
    if written:
        pytest.skip("cannot make a read-only folder for a child process here")

    def run(args: list[str]) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "fairprompt.cli", *args], capture_output=True, text=True,
                              preexec_fn=preexec, timeout=300)

    return run


def test_an_unwritable_folder_is_one_line_before_any_work(predictions: Path, tmp_path: Path) -> None:
    run = _read_only_runner()
    out = audited(predictions, tmp_path / "out")
    locked_parent = tmp_path / "ro"
    locked_parent.mkdir()
    out.chmod(0o555)
    locked_parent.chmod(0o555)
    try:
        before = sorted(p.name for p in out.iterdir())
        for args, fragment in [(audit_args(predictions, out), f"the output folder {out} is not writable"),
                               (["report", str(out)], f"the output folder {out} is not writable"),
                               (audit_args(predictions, locked_parent / "new"),
                                f"cannot create the output folder {locked_parent / 'new'}")]:
            proc = run(args)
            assert_user_error(proc.returncode, proc.stderr, fragment, "Permission denied")
            assert proc.stdout == ""
        assert sorted(p.name for p in out.iterdir()) == before
    finally:
        out.chmod(0o755)
        locked_parent.chmod(0o755)
