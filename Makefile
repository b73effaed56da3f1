# zetcd: `make run` starts the server, `make test` runs every check CI runs.
#
#   make deps    install the Debian packages the servers and tests need (only what is missing)
#   make venv    create .venv and install zetcd with its test extras (again when pyproject changes)
#   make run     deps + venv, then `.venv/bin/zetcd $(ARGS)`, e.g. make run ARGS="--zkaddr 127.0.0.1:2181"
#   make test    deps + venv, then ruff, ruff format --check, mypy and pytest ($(PYTEST_ARGS))
#   make lint    ruff + ruff format --check + mypy only
#   make format  apply ruff's formatting and safe fixes
#   make golden  re-record tests/golden/ from real clients against a real ZooKeeper
#   make clean   remove caches and reports; `make distclean` also removes .venv

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.NOTPARALLEL:
.DEFAULT_GOAL := test

VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
ARGS ?=
PYTEST_ARGS ?= $(if $(CI),--durations=25,)

APT_PACKAGES := etcd-server etcd-client zookeeper zookeeper-bin libnetty-java default-jre-headless openjdk-17-jdk-headless \
	libcurator-framework-java libcurator-recipes-java libslf4j-java python3-venv gcc libzookeeper-mt-dev
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

# The distribution's python3 if it is >= 3.11, else the first Python >= 3.11 on PATH. Debian's
# interpreter is built with profile-guided and link-time optimization; a default pyenv build is
# not, and costs zetcd 15-20% more CPU per write (README, "Quick start").
PYTHON ?= $(shell for p in /usr/bin/python3 python3 python3.13 python3.12 python3.11; do \
	command -v $$p >/dev/null 2>&1 \
	&& $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
	&& { echo $$p; break; }; done)

.PHONY: deps venv run test lint format golden reports clean distclean

deps:
	@missing=""; \
	for pkg in $(APT_PACKAGES); do \
		dpkg -s "$$pkg" 2>/dev/null | grep -q '^Status: install ok installed' \
			|| missing="$$missing $$pkg"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "deps: installing$$missing"; \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update -qq; \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			--no-install-recommends $$missing; \
	fi

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "venv: no python >= 3.11 on PATH" >&2; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	@touch $@

reports:
	@mkdir -p reports

run: deps venv
	$(BIN)/zetcd $(ARGS)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy zetcd oracle fuzz

test: deps venv reports lint
	$(BIN)/pytest -p no:cacheprovider $(PYTEST_ARGS)

format: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

golden: deps venv
	$(BIN)/python -m tools.record_golden

clean:
	rm -rf reports .mypy_cache .ruff_cache .pytest_cache .hypothesis build dist *.egg-info
	find . -name __pycache__ -type d -not -path './$(VENV)/*' -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
