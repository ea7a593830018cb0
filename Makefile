# Every command a person types. `make demo` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_DIR ?= demo
DEMO_PORT ?= 8000
DEMO_RUNS ?= 10
PYTEST_ARGS ?=
# pytest-xdist workers for the parallel part of `make test` (the tests mostly wait on real services)
TEST_WORKERS ?= 3

.PHONY: help install demo up test test-unit test-integration test-e2e lint format services services-stop clean
.DEFAULT_GOAL := help

help:  ## list the targets (this text; `make` alone prints it)
	@awk 'BEGIN {FS = ":[^#]*## "} /^[a-zA-Z0-9_%-]+:[^#]*## / {printf "  make %-17s %s\n", $$1, $$2}' \
		$(MAKEFILE_LIST)
	@printf '  make %-17s %s\n' 'deploy-<part>' 'deploy one part to INVENTORY (CHECK=1: dry run)' \
		'restart-<part>' 'graceful restart of a running part'
	@echo '    parts: $(SERVICES); restartable: $(RESTARTABLE)'

$(BIN)/python:
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "autoreduce needs Python 3.11 or newer"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python setup.cfg pyproject.toml
	$(BIN)/pip install --quiet -e '.[test,lint,deploy]'
	touch $@

install: $(VENV)/.installed  ## create .venv and install autoreduce with its test and lint tools

demo: install  ## a synthetic facility on the embedded defaults (Ctrl-C stops it)
	$(BIN)/autoreduce demo --dir $(DEMO_DIR) --port $(DEMO_PORT) --runs $(DEMO_RUNS)

up: install  ## every service on this machine, configured by autoreduce.toml
	$(BIN)/autoreduce up

test: install  ## the whole suite: in parallel, then the tests that restart shared services, alone
	scripts/services.sh start
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile -m "not exclusive" $(PYTEST_ARGS)
	$(BIN)/pytest -m exclusive $(PYTEST_ARGS) || [ $$? -eq 5 ]  # 5: PYTEST_ARGS chose none of them

test-unit: install  ## unit tests only (no services needed)
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

test-integration: install  ## integration tests on real SQLite, MariaDB, ActiveMQ and RabbitMQ
	scripts/services.sh start
	$(BIN)/pytest tests/integration $(PYTEST_ARGS)

test-e2e: install  ## end-to-end tests: real processes (restarts MariaDB and ActiveMQ)
	$(BIN)/pytest tests/e2e $(PYTEST_ARGS)

lint: install  ## ruff, mypy and ansible-lint (production profile)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	cd ansible && $(ANSIBLE_ENV) ../$(BIN)/ansible-lint --offline --profile production

format: install  ## ruff format and ruff check --fix
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

.PHONY: bench
BENCH_ARGS ?=
$(VENV)/.bench-installed: $(VENV)/.installed setup.cfg
	$(BIN)/pip install --quiet -e '.[bench]'
	touch $@

bench: install $(VENV)/.bench-installed  ## benchmark tables on real services, ~10 min (BENCH_ARGS=--quick: ~2)
	scripts/services.sh start
	$(BIN)/python -m bench $(BENCH_ARGS)

.PHONY: screenshots
screenshots: install  ## PNGs of each web UI page from a demo instance, in docs/screenshots
	scripts/services.sh start chromium
	$(BIN)/python scripts/screenshots.py docs/screenshots

services:  ## start the services the tests need (idempotent)
	scripts/services.sh start

services-stop:  ## stop what `make services` started
	scripts/services.sh stop

clean:  ## remove .venv and the caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info

# --- Deploying (ansible/; README "Deploying") ---------------------------------------------------
# make deploy-<service> | restart-<service> | deploy-all  [INVENTORY=inventories/production]
#   [CHECK=1: --check --diff, nothing changes] [ANSIBLE_ARGS='--ask-vault-pass -l host']
INVENTORY ?= inventories/local
CHECK ?=
ANSIBLE_ARGS ?=
SERVICES := rest-api run-detection queue-processor database activemq log-shipper monitoring backup \
	retention
RESTARTABLE := rest-api run-detection queue-processor activemq log-shipper
ANSIBLE_ENV := ANSIBLE_HOME=$(CURDIR)/.ansible XDG_CACHE_HOME=$(CURDIR)/.ansible/cache \
	ANSIBLE_CONFIG=$(CURDIR)/ansible/ansible.cfg
PLAYBOOK = cd ansible && $(ANSIBLE_ENV) ../$(BIN)/ansible-playbook -i $(abspath $(INVENTORY)) \
	$(if $(CHECK),--check --diff) $(ANSIBLE_ARGS)
.PHONY: dist deploy-all $(addprefix deploy-,$(SERVICES)) $(addprefix restart-,$(RESTARTABLE))

dist: install  ## build the wheel the deployment installs (dist/autoreduce-<version>-py3-none-any.whl)
	rm -rf dist build && SOURCE_DATE_EPOCH=$$(git log -1 --format=%ct) $(BIN)/pip wheel --quiet --no-deps --wheel-dir dist .

deploy-all: dist  ## deploy every part to INVENTORY (default: local); CHECK=1: dry run with diff
	$(PLAYBOOK) site.yml

$(addprefix deploy-,$(SERVICES)): deploy-%: dist  ## deploy one part: deploy-rest-api, deploy-queue-processor, ...
	$(PLAYBOOK) site.yml --tags $(subst -,_,$*)

$(addprefix restart-,$(RESTARTABLE)): restart-%: install  ## graceful restart: restart-queue-processor, ...
	$(PLAYBOOK) restart.yml -e autoreduce_restart=$(subst -,_,$*)
