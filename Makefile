# make run   - set everything up and run the chat on http://127.0.0.1:8000
# make test  - set everything up and run the whole test suite
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: run test setup lint bench screenshots

run: setup
	bin/install-system-packages run
	bin/run-chat

test: setup
	bin/install-system-packages test
	$(PY) -m pytest

setup: $(VENV)/.installed node_modules/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements-dev.txt
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# The README's pictures of the chat page (phone and desktop, light and dark).
screenshots: setup
	bin/install-system-packages test
	SCREENSHOTS_DIR=docs/screenshots $(PY) -m pytest -q tests/browser/test_screenshots.py
