# make run   - set everything up and run the chat on http://127.0.0.1:8000
# make test  - set everything up and run the whole test suite
# make bench - the benchmark: product, tutorial and ceiling (about 30 minutes; BENCH_ARGS=--quick: about one)
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: run test setup lint bench screenshots docs iam

run: setup
	bin/install-system-packages run
	bin/run-chat

test: setup
	bin/install-system-packages test
	$(PY) -m pytest

bench: setup
	bin/install-system-packages test
	$(PY) -m bench $(BENCH_ARGS)

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

# The architecture diagram from its source, and deploy/iam/ from chat/iam.py
# for the default names (a clean environment).
docs: iam
	dot -Tsvg docs/architecture.dot -o docs/architecture.svg

iam:
	for policy in application table-setup static-deploy; do \
	  env -i PATH="$$PATH" DJANGO_DEBUG=1 $(PY) manage.py iam_policy $$policy > deploy/iam/$$policy.json; \
	done
