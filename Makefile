# Two commands set everything up on a fresh clone: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
UV     := $(BIN)/uv
STAMP  := $(VENV)/.installed

.PHONY: venv test lint demo airflow bench lock sandbox clean

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	test -x $(UV) || { $(BIN)/python -m ensurepip >/dev/null 2>&1 || true; \
		$(BIN)/python -m pip install -q --disable-pip-version-check uv==0.13.9; }
	$(UV) pip install -q -p $(BIN)/python -r requirements.lock
	$(UV) pip install -q -p $(BIN)/python --no-deps -e .
	touch $(STAMP)

venv: $(STAMP)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: venv
	$(BIN)/ruff check .
	$(BIN)/pytest -q -p no:cacheprovider $(PYTEST_ARGS)

demo: venv
	$(BIN)/python scripts/demo.py

airflow: venv
	$(BIN)/python scripts/demo.py --standalone

bench: venv
	$(BIN)/python -m bench

sandbox: venv
	$(BIN)/linkmsg-sandbox --port 8765

# Re-pin after changing dependencies in pyproject.toml.
lock: venv
	$(UV) pip compile pyproject.toml --all-extras --python-version 3.11 -q -o requirements.lock

clean:
	rm -rf $(VENV) .demo .bench .pytest_cache .ruff_cache
