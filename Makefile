# Signalbox. `make dev` runs it on embedded defaults; `make test` runs the whole suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: dev test lint bench install

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit("Signalbox needs Python >= 3.11") if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml requirements.lock | $(BIN)/python
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c requirements.lock -e '.[dev]'
	touch $@

install: $(VENV)/.installed

dev: install
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py createcachetable
	$(BIN)/python manage.py seed_demo
	@echo "Starting web, worker and beat (Ctrl-C stops them all)."
	$(BIN)/honcho -f Procfile.dev start

test: install
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check .

# All but rendering need PostgreSQL and Redis on 127.0.0.1 (as .ci/run starts them).
# See bench/README.md; figures in docs/performance.md.
bench: install
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/delivery.py
	$(BIN)/python bench/render.py
	$(BIN)/python bench/policy.py
	$(BIN)/python bench/journeys.py
