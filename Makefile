# Cinepulse: developer entry points. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help
UV ?= $(shell command -v uv || echo python3 -m uv)
RUN := $(UV) run --frozen --all-packages
STACK := $(RUN) cinepulse-stack

.PHONY: help setup up down status env migrate smoke services demo test test-unit test-integration test-airflow drills lint format schemas docs bench chart-check clean

help: ## list the targets
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-17s %s\n", $$1, $$2}'

setup: ## install everything this machine needs (idempotent)
	@bash scripts/setup.sh

up: ## start the local stack (Kafka, PostgreSQL, MongoDB protocol, Prometheus) and migrate
	@$(STACK) up
	@$(STACK) migrate

down: ## stop the services and the local stack; nothing is left running
	@$(STACK) down

status: ## one line per component (and per part of the real cluster when it runs); exits non-zero if any is down
	@$(STACK) status; rc=$$?; \
	if [ -d "$${CINEPULSE_CLUSTER_STATE:-/var/lib/cinepulse-cluster}/run" ]; then \
	  echo "-- the real cluster (make cluster-down stops it)"; \
	  $(RUN) python -m cinepulse_devstack.cluster status || rc=1; \
	fi; exit $$rc

env: ## print the variables that point services at the local stack
	@$(STACK) env

migrate: ## apply the warehouse migrations to the local stack
	@$(STACK) migrate

smoke: ## one event through Kafka into PostgreSQL staging
	@$(STACK) smoke

services: up ## start the services (event gateway, archiver) next to the stack
	@$(STACK) up --services

DEMO_ARGS ?=
CLUSTER ?=
demo: $(if $(filter kind,$(CLUSTER)),,$(if $(CLUSTER),kube-tools images-all)) ## the end-to-end demo on sample data: stack, services, TMDB load, MovieLens replay, Spark, training, reconciliation (DEMO_ARGS="--users 100" for a quicker one; CLUSTER=1: installed by the chart on the real local node, CLUSTER=kind: on kind)
ifeq ($(CLUSTER),kind)
	@DEMO_ARGS="$(DEMO_ARGS)" bash scripts/kind.sh demo
else ifneq ($(CLUSTER),)
	$(RUN) python -m cinepulse_devstack.cluster.demo $(DEMO_ARGS)
else
	@$(STACK) demo $(DEMO_ARGS)
endif

# make test runs everything CI runs: a skipped test (a missing data set, tool or image) fails
# it as in CI (tests/skip_guard.py); make test-unit and the other targets report skips only
test: export CINEPULSE_STRICT_SKIPS = 1
test: ## unit tests, integration tests on the real local stack, the fault drills, the images, the demo, the chart on kwok and on a real node (e2e), the Airflow DAGs
	$(RUN) pytest tests/unit -q
	$(RUN) pytest tests/integration -q
	$(RUN) pytest tests/drills -q
	@bash scripts/images.sh all
	$(RUN) pytest tests/e2e -q
	cd airflow && $(UV) run --frozen pytest -q

test-airflow: ## the Airflow DAGs' tests, in airflow/.venv (DAG runs against the local stack)
	cd airflow && $(UV) run --frozen pytest -q

test-unit: ## unit tests only (nothing running needed)
	$(RUN) pytest tests/unit -q

test-integration: ## integration tests (starts or reuses the local stack)
	$(RUN) pytest tests/integration -q

drills: ## the 12 fault drills on a private stack (archiver, Kafka, Spark, PostgreSQL, MongoDB, gateway, network, disk, ids); writes results/drills.md
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

docs: ## regenerate the settings and metrics references (docs/reference/) from the code
	$(RUN) python scripts/settings_reference.py
	$(RUN) python scripts/metrics_reference.py

bench: ## run every benchmark; writes results/bench.md, bench.json and bench/*.png
	$(RUN) python -m bench

chart-check: ## the Helm chart: lint, render each ci/ scenario, kubeconform, kube-score
	$(RUN) python -m cinepulse_devstack.chart

clean: down ## stop the stack and delete its state (.stack/); caches are kept
	rm -rf .stack

# -- container images (optional: podman, or docker with a public base; see docs/operations/images.md) --
.PHONY: images images-deps images-all test-images
images: ## build every service's container image (podman); one image: make image-<svc>, e.g. image-api
	@bash scripts/images.sh

images-deps: ## build the chart's bundled dependencies' images: kafka, postgres, mongodb (FerretDB), prometheus, pushgateway
	@bash scripts/images.sh deps

images-all: ## build the services' and the dependencies' images
	@bash scripts/images.sh all

image-%:
	@bash scripts/images.sh $*

test-images: ## the image tests: services (non-root, /healthz, jobs' --help) and dependencies (clients as the chart runs them)
	$(RUN) pytest tests/images -q

# -- the chart on a real control plane (kube-apiserver, controller-manager, scheduler, etcd from
#    the Go module proxy; kwok's fake nodes). See docs/operations/chart.md --
.PHONY: kube-tools chart-e2e kind-up kind-e2e kind-down
kube-tools: ## build kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, etcd, kwok (cached)
	@bash scripts/k8s-tools.sh

kind-up: ## (Docker + kind) build, then a kind cluster with the chart's images (the local node's steps, provider kind)
	@bash scripts/kind.sh up

kind-e2e: ## (Docker + kind) build, then the real-node e2e on kind (install, helm test, monitors, events, upgrade, demo steps, uninstall)
	@bash scripts/kind.sh e2e

kind-down: ## (Docker + kind) delete the kind cluster
	@bash scripts/kind.sh down

chart-e2e: kube-tools ## the chart on a kwok cluster: install --wait, upgrade, checks, uninstall
	$(RUN) python -m cinepulse_devstack.kube

# -- a real one-node cluster (containerd, kubelet, kube-proxy, CoreDNS); docs/operations/cluster.md --
.PHONY: cluster-up cluster-down cluster-status cluster-e2e
cluster-up: kube-tools images-all ## a real single-node Kubernetes cluster on this machine with the chart's images (idempotent)
	$(RUN) python -m cinepulse_devstack.cluster up

cluster-down: ## stop the cluster and restore the host (sysctls, iptables, mounts, cgroups)
	$(RUN) python -m cinepulse_devstack.cluster down

cluster-status: ## one line per part of the cluster; exit 1 if any is down
	$(RUN) python -m cinepulse_devstack.cluster status

cluster-e2e: kube-tools images-all ## the chart with real pods: install, helm test, events, rolling upgrade, the demo's steps, uninstall
	$(RUN) python -m cinepulse_devstack.cluster.e2e
