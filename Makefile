# Two commands set everything up on a fresh clone: `make demo` and `make test`.
# `make test AIRFLOW=2.11` (or 3.0) runs the same target on another tested Airflow line, in its own venv
# built from that line's lock file; without AIRFLOW= everything stays on 3.3 in .venv (constraints/README.md).
PYTHON  ?= python3
AIRFLOW ?= 3.3
AIRFLOW_LINES := 3.3 3.0 2.11
ifeq ($(filter $(AIRFLOW),$(AIRFLOW_LINES)),)
$(error AIRFLOW=$(AIRFLOW) is not a tested line; choose one of: $(AIRFLOW_LINES))
endif
ifeq ($(AIRFLOW),3.3)
VENV   := .venv
LOCK   := requirements.lock
else
VENV   := .venv-$(AIRFLOW)
LOCK   := requirements-$(AIRFLOW).lock
endif
BIN    := $(VENV)/bin
UV     := $(BIN)/uv
STAMP  := $(VENV)/.installed

.PHONY: venv test lint demo airflow bench lock locks sandbox dist clean soak

$(STAMP): pyproject.toml $(LOCK)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	test -x $(UV) || { $(BIN)/python -m ensurepip >/dev/null 2>&1 || true; \
		$(BIN)/python -m pip install -q --disable-pip-version-check uv==0.13.9; }
	$(UV) pip install -q -p $(BIN)/python -r $(LOCK)
	$(UV) pip install -q -p $(BIN)/python --no-deps -e .
	touch $(STAMP)

venv: $(STAMP)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The suite on two pytest-xdist workers (PYTEST_WORKERS=0: one process), each with its own AIRFLOW_HOME, metadata
# DB, keys, sandboxes and PostgreSQL (tests/conftest.py); a module's tests stay on one worker (--dist loadfile),
# so module-scoped servers start once and its timing-sensitive tests run in order. Modules go out in the order
# tests/conftest.py sorts them (the minutes-long ones first), not xdist's largest-module-first.
PYTEST_WORKERS ?= 2
test: venv
	$(BIN)/ruff check .
	$(BIN)/pytest -q -p no:cacheprovider -n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder $(PYTEST_ARGS)

# The model-based suite with at least 100 random examples per inbox vendor (docs/reliability.md).
soak: venv
	LINKMSG_MODEL_PROFILE=soak $(BIN)/pytest -q -p no:cacheprovider --timeout=3600 tests/model $(PYTEST_ARGS)

demo: venv
	$(BIN)/python scripts/demo.py

# A local Airflow with the sandbox: `make airflow` (a free port) or `make airflow PORT=8080`; state in .airflow/.
airflow: venv
	$(BIN)/python scripts/airflow_local.py $(if $(PORT),--port $(PORT))

# The wheel and the sdist under dist/: uv's isolated PEP 517 build with flit_core (pyproject's range). Needs
# only uv (in .venv, installed alone on a fresh clone), not the project's dependencies.
dist:
	test -x $(UV) || { { test -x $(BIN)/python || $(PYTHON) -m venv $(VENV); } && \
		$(BIN)/python -m pip install -q --disable-pip-version-check uv==0.13.9; }
	rm -rf dist
	$(UV) build -q --out-dir dist
	@ls -1 dist

bench: venv
	$(BIN)/python -m bench

sandbox: venv
	$(BIN)/linkmsg-sandbox --port 8765

# Re-pin after changing dependencies in pyproject.toml: `make lock` (3.3), `make lock AIRFLOW=2.11`, ...
# uv keeps the pins already in the lock file where they still fit; the constraint file holds the line.
lock:
	test -x .venv/bin/uv || $(MAKE) venv AIRFLOW=3.3
	.venv/bin/uv pip compile pyproject.toml --all-extras --python-version 3.11 -q \
		-c constraints/airflow-$(AIRFLOW).txt -o $(LOCK)

# Every tested line's lock at once (after a dependency change).
locks:
	for line in $(AIRFLOW_LINES); do $(MAKE) --no-print-directory lock AIRFLOW=$$line || exit 1; done

clean:
	rm -rf $(VENV) .demo .airflow .bench .pytest_cache .ruff_cache dist
