# Two commands do everything on a fresh machine: `make demo` and `make test`.
# Each creates .venv if missing, installs the pinned lock and the package, then runs.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.fairprompt-installed

.PHONY: demo test install bench docs artifacts check-artifacts clean-reports

$(STAMP): requirements.lock pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/fairprompt audit audits/adult_income.yaml

test: $(STAMP)
	$(PY) -m pytest

# Retrain the task prompts shipped in fairprompt/artifacts from their seeds (CPU, about 30 minutes).
artifacts: $(STAMP)
	$(PY) -m fairprompt.shipped build

# Retrain them in a scratch cache and confirm their test metrics match the shipped ones.
check-artifacts: $(STAMP)
	$(PY) -m fairprompt.shipped check

bench: $(STAMP)
	$(PY) benchmarks/bench_metrics.py

# The documentation site (mkdocs.yml, docs/) into site/; --strict fails on any broken link or anchor.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

clean-reports:
	find reports -mindepth 1 -maxdepth 1 ! -name README.md -exec rm -rf {} +
