# Two commands for a fresh machine:
#   make run    install what is missing, start Asterisk and the agent, place a demo call, keep serving
#   make test   install what is missing and run the whole suite (unit, real models, real Asterisk)
SHELL := /bin/bash
PY := .venv/bin/python
PIP := .venv/bin/pip
STAMP := .venv/.installed

.PHONY: setup venv models asterisk run serve demo test test-fast test-e2e bench lint clean

setup: venv models asterisk

venv: $(STAMP)
$(STAMP): pyproject.toml scripts/setup-python.sh
	bash scripts/setup-python.sh
	touch $(STAMP)

models: venv
	$(PY) -m agent models

asterisk:
	bash scripts/setup-system.sh
	bash scripts/asterisk.sh install

run: setup
	bash scripts/asterisk.sh start
	$(PY) -m agent doctor --config $${PHONE_AGENT_CONFIG:-configs/clinic}
	bash scripts/run.sh

test: setup
	bash scripts/asterisk.sh start
	bash scripts/postgres.sh start
	$(PY) -m pytest tests

test-fast: venv
	$(PY) -m pytest tests -m "not e2e and not models"

test-e2e: setup
	bash scripts/asterisk.sh start
	$(PY) -m pytest tests -m e2e

bench: setup
	bash scripts/asterisk.sh start
	$(PY) -m agent bench

lint: venv
	.venv/bin/ruff check agent tests

clean:
	rm -rf .venv state bench-results
