# Cinepulse: developer entry points. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help
UV ?= $(shell command -v uv || echo python3 -m uv)
RUN := $(UV) run --frozen --all-packages
STACK := $(RUN) cinepulse-stack

.PHONY: help setup up down status env migrate smoke services demo test test-unit test-integration test-airflow drills lint format schemas bench chart-check clean

help: ## list the targets
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-17s %s\n", $$1, $$2}'

setup: ## install everything this machine needs (idempotent)
	@bash scripts/setup.sh

up: ## start the local stack (Kafka, PostgreSQL, MongoDB protocol, Prometheus) and migrate
	@$(STACK) up
	@$(STACK) migrate

down: ## stop the services and the local stack; nothing is left running
	@$(STACK) down

status: ## one line per component; exits non-zero if any is down
	@$(STACK) status

env: ## print the variables that point services at the local stack
	@$(STACK) env

migrate: ## apply the warehouse migrations to the local stack
	@$(STACK) migrate

smoke: ## one event through Kafka into PostgreSQL staging
	@$(STACK) smoke

services: up ## start the services (event gateway, archiver) next to the stack
	@$(STACK) up --services

DEMO_ARGS ?=
demo: ## the end-to-end demo on sample data: stack, services, TMDB load, MovieLens replay, Spark, training, reconciliation (DEMO_ARGS="--users 100" for a quicker one)
	@$(STACK) demo $(DEMO_ARGS)

test: ## unit tests, integration tests on the real local stack, the fault drills, the demo and the chart on a kwok control plane (e2e), the Airflow DAGs
	$(RUN) pytest tests/unit -q
	$(RUN) pytest tests/integration -q
	$(RUN) pytest tests/drills -q
	$(RUN) pytest tests/e2e -q
	cd airflow && $(UV) run --frozen pytest -q

test-airflow: ## the Airflow DAGs' tests, in airflow/.venv (DAG runs against the local stack)
	cd airflow && $(UV) run --frozen pytest -q

test-unit: ## unit tests only (nothing running needed)
	$(RUN) pytest tests/unit -q

test-integration: ## integration tests (starts or reuses the local stack)
	$(RUN) pytest tests/integration -q

drills: ## fault drills on a private stack (Kafka, Spark, PostgreSQL, archiver, fallback); writes results/drills.md
	$(RUN) pytest tests/drills -q

lint: ## ruff (lint + format check) and mypy
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	$(RUN) mypy libs migrations/src services

format: ## apply ruff's fixes and formatting
	$(RUN) ruff check --fix .
	$(RUN) ruff format .

schemas: ## regenerate transform_rules.schema.json from the rules models
	$(RUN) python -m cinepulse_common.rules > libs/cinepulse-common/src/cinepulse_common/transform_rules.schema.json

bench: ## run every benchmark; writes results/bench.md, bench.json and bench/*.png
	$(RUN) python -m bench

chart-check: ## the Helm chart: lint, render each ci/ scenario, kubeconform, kube-score
	$(RUN) python -m cinepulse_devstack.chart

clean: down ## stop the stack and delete its state (.stack/); caches are kept
	rm -rf .stack

# -- container images (optional: podman, or docker with a public base; see README "Images") --
.PHONY: images test-images
images: ## build every container image (podman); one image: make image-<svc>, e.g. image-api
	@bash scripts/images.sh

image-%:
	@bash scripts/images.sh $*

test-images: ## the image tests: non-root, /healthz, jobs' --help (after make images)
	$(RUN) pytest tests/images -q

# -- the chart on a real control plane (kube-apiserver, controller-manager, scheduler, etcd from
#    the Go module proxy; kwok's fake nodes). See README "Chart on a real control plane" --
.PHONY: kube-tools chart-e2e kind-up kind-e2e kind-down
kube-tools: ## build kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, etcd, kwok (cached)
	@bash scripts/k8s-tools.sh

kind-up: ## (Docker + kind) a kind cluster with the images, the Spark and Prometheus operators and the chart
	@bash scripts/kind.sh up

kind-e2e: ## (Docker + kind) helm test and every Deployment available on the kind cluster
	@bash scripts/kind.sh e2e

kind-down: ## (Docker + kind) delete the kind cluster
	@bash scripts/kind.sh down

chart-e2e: kube-tools ## the chart on a kwok cluster: install --wait, upgrade, checks, uninstall
	$(RUN) python -m cinepulse_devstack.kube
