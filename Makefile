# The quick-start commands (README):
#   make train        — set up, then run the main job on the embedded default (no download)
#   make test         — set up, then run the test suite
#   make tensorboard  — set up, then serve the latest run's TensorBoard (RUN=runs/<name>: that run)
#   make lint         — set up, then check the code: pyink's format and ruff's rules (pyproject.toml;
#                       .ci/run runs it first); `make format` rewrites the files into pyink's format
# All install missing Debian packages and build .venv (pinned requirements + this package, whose
# C extension is compiled against the system libmypaint).

PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# The pinned pip, setuptools and wheel of requirements.txt (their one place), installed before the rest.
BUILD_TOOLS := $(shell grep -E '^(pip|setuptools|wheel)==' requirements.txt)

.PHONY: train test lint format tensorboard setup system-deps benchmarks clean

train: setup
	$(PY) launch/train.py --flagfile=configs/strokes.cfg

# --durations: the slowest tests are named at the end of every run (the suite's budget is 10 minutes).
test: setup
	$(PY) -m pytest -q --durations=15 tests

# Google's format (pyink), then pyflakes, pycodestyle and Google's import order (ruff); pyproject.toml says
# which rules and why.
lint: setup
	$(VENV)/bin/pyink --check .
	$(VENV)/bin/ruff check .

format: setup
	$(VENV)/bin/pyink .
	$(VENV)/bin/ruff check --select I --fix .

# The run under runs/ that logged last, or RUN=<run directory>; port 6006 or the next free one
# (launch/serve_tensorboard.py).
tensorboard: setup
	@$(PY) launch/serve_tensorboard.py $(if $(RUN),--run=$(RUN))

setup: system-deps $(STAMP)

system-deps:
	@bash scripts/system_deps.sh

$(STAMP): requirements.txt setup.py $(wildcard environments/*.c)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q $(BUILD_TOOLS)
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	@touch $(STAMP)

# Every benchmark, one table: benchmarks/results.json and results.md (QUICK=1: a short sanity run).
benchmarks: setup
	$(PY) benchmarks/run_all.py $(if $(QUICK),--quick)

clean:
	rm -rf $(VENV) build *.egg-info environments/*.so
