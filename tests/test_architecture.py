"""The dependency rules of DESIGN.md, checked: the report renders from the typed record alone (no torch, models or
mitigation code), the record and the metric engine know no models, and no module imports another's private names."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "fairprompt"


def _loaded_after(code: str) -> set[str]:
    """The fairprompt, torch and transformers modules a fresh interpreter has loaded after running ``code``."""
    script = (f"import sys\n{code}\n"
              "print('\\n'.join(m for m in sys.modules if m.split('.')[0] in ('fairprompt', 'torch', 'transformers')))")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=300)
    return set(out.stdout.split())


def test_the_report_renders_from_the_record_alone(tmp_path: Path) -> None:
    from fairprompt.results import write_results
    from report_factories import audit_results

    write_results(audit_results(scores=True), tmp_path / "results.json")
    loaded = _loaded_after("from fairprompt.report import Report\n"
                           f"Report.load({str(tmp_path)!r}).html()\n"
                           "from fairprompt.report.compliance import render_compliance\n"
                           f"render_compliance(Report.load({str(tmp_path)!r}).results)")
    assert "fairprompt.report.view" in loaded  # it really rendered
    forbidden = {m for m in loaded if m.split(".")[0] in ("torch", "transformers")
                 or m.startswith(("fairprompt.models", "fairprompt.mitigation", "fairprompt.pipeline", "fairprompt.tasks",
                                  "fairprompt.repairs", "fairprompt.spec"))}
    assert not forbidden, sorted(forbidden)


def test_the_record_and_the_metric_engine_know_no_models_and_no_report() -> None:
    loaded = _loaded_after("import fairprompt.results, fairprompt.results.schema, fairprompt.metrics")
    assert not {m for m in loaded if m.split(".")[0] in ("torch", "transformers")
                or m.startswith(("fairprompt.models", "fairprompt.report", "fairprompt.mitigation"))}
    metrics = _loaded_after("import fairprompt.metrics")
    assert not {m for m in metrics if m.startswith(("fairprompt.results", "fairprompt.report", "fairprompt.models"))}


def test_no_module_imports_another_modules_private_names() -> None:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("fairprompt"):
                found += [f"{path.relative_to(PACKAGE.parent)}: {node.module}.{a.name}" for a in node.names
                          if a.name.startswith("_") and not a.name.startswith("__")]
    assert not found, found
