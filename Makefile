# `make run` and `make test` each set up .venv themselves on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run dev test bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.serving: requirements.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev: requirements.txt requirements-training.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $@ $(VENV)/.serving

run: $(VENV)/.serving
	$(BIN)/gunicorn -c gunicorn.conf.py api:app

dev: $(VENV)/.serving
	$(BIN)/python api.py

test: $(VENV)/.dev
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(VENV)/.dev
	$(BIN)/python bench/chat_overhead.py

clean:
	rm -rf $(VENV) .pytest_cache
