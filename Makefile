# dlc-guard — everything sets itself up from nothing: a virtualenv in .venv, tools in .tools.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
UPSTREAM ?= ../shared/dlc-data/upstream

.PHONY: all setup tools run test lint typecheck unit e2e catalog bench bench-quick clean

# Real tools built from their Go modules (tools/*/go.mod pins each one); caches stay in .tools.
TOOLS  := $(CURDIR)/.tools
GOENV  := GOMODCACHE=$(TOOLS)/go/mod GOCACHE=$(TOOLS)/go/cache GOFLAGS=-modcacherw GOTOOLCHAIN=local
HELM   := $(TOOLS)/bin/helm
ETCD   := $(TOOLS)/bin/etcd
KUBE_APISERVER := $(TOOLS)/bin/kube-apiserver
KUBE_CONTROLLER_MANAGER := $(TOOLS)/bin/kube-controller-manager
VEGETA := $(TOOLS)/bin/vegeta
REGISTRY := $(TOOLS)/bin/registry
# Kyverno's real chart (its Go module carries it), for the tests of sharing the report CRDs
KYVERNO_VERSION := v1.19.1
KYVERNO_CHART := $(TOOLS)/charts/kyverno-$(KYVERNO_VERSION)/Chart.yaml
KUBE_VERSION := $(shell awk '$$1=="k8s.io/kubernetes" {sub(/^v/, "", $$2); print $$2}' tools/kube/go.mod)
# helm stamps its own version and the Kubernetes version it assumes (helm template, lint) the way
# its Makefile does: from the client-go it was built with
HELM_VERSION := $(shell awk '$$1=="helm.sh/helm/v3" {print $$2}' tools/helm/go.mod)
HELM_K8S_MINOR := $(shell awk '$$1=="k8s.io/client-go" {split($$2, v, "."); print v[2]}' tools/helm/go.mod)
HELM_LDFLAGS := -X helm.sh/helm/v3/internal/version.version=$(HELM_VERSION) \
	$(foreach p,helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil,\
	-X $(p).k8sVersionMajor=1 -X $(p).k8sVersionMinor=$(HELM_K8S_MINOR))
KUBE_LDFLAGS := $(foreach p,k8s.io/component-base/version k8s.io/client-go/pkg/version,\
	-X $(p).gitVersion=v$(KUBE_VERSION) -X $(p).gitMajor=$(word 1,$(subst ., ,$(KUBE_VERSION))) \
	-X $(p).gitMinor=$(word 2,$(subst ., ,$(KUBE_VERSION))) -X $(p).gitTreeState=clean)

all: test

$(STAMP): pyproject.toml tests/requirements-crosscheck.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	@# setuptools says, on every editable install, that folders named like the package may shadow
	@# it: here they are the package. Only that module's notice is silenced.
	PYTHONWARNINGS="ignore:::setuptools.command.editable_wheel" $(PY) -m pip install --quiet -e '.[dev]'
	$(PY) -m pip install --quiet --no-deps -r tests/requirements-crosscheck.txt
	touch $(STAMP)

setup: $(STAMP)

## tools: helm, etcd, kube-apiserver, kube-controller-manager and the CNCF Distribution registry in
## .tools/bin; Kyverno's chart in .tools/charts
## (built once, reused while their go.mod is unchanged)
tools: $(HELM) $(ETCD) $(KUBE_APISERVER) $(KUBE_CONTROLLER_MANAGER) $(REGISTRY) $(KYVERNO_CHART)

$(KYVERNO_CHART):
	dir=$$($(GOENV) go mod download -json github.com/kyverno/kyverno@$(KYVERNO_VERSION) | $(PYTHON) -c 'import json,sys; print(json.load(sys.stdin)["Dir"])') && \
	rm -rf $(dir $@) && mkdir -p $(dir $@) && cp -r $$dir/charts/kyverno/. $(dir $@) && chmod -R u+w $(dir $@)

$(HELM): tools/helm/go.mod tools/helm/go.sum
	cd tools/helm && $(GOENV) go build -trimpath -ldflags '$(HELM_LDFLAGS)' -o $@ helm.sh/helm/v3/cmd/helm

$(ETCD): tools/etcd/go.mod tools/etcd/go.sum tools/etcd/main.go
	cd tools/etcd && $(GOENV) go build -trimpath -o $@ .

$(REGISTRY): tools/registry/go.mod tools/registry/go.sum
	cd tools/registry && $(GOENV) go build -trimpath -o $@ github.com/distribution/distribution/v3/cmd/registry

$(KUBE_APISERVER): tools/kube/go.mod tools/kube/go.sum
	cd tools/kube && $(GOENV) go build -trimpath -ldflags '$(KUBE_LDFLAGS)' -o $@ k8s.io/kubernetes/cmd/kube-apiserver

# only its garbage collector runs in the tests (ownerReferences of PolicyReports)
$(KUBE_CONTROLLER_MANAGER): tools/kube/go.mod tools/kube/go.sum
	cd tools/kube && $(GOENV) go build -trimpath -ldflags '$(KUBE_LDFLAGS)' -o $@ k8s.io/kubernetes/cmd/kube-controller-manager

## run: judge a handful of real references with the embedded catalog
run: $(STAMP)
	$(VENV)/bin/dlc-guard check --as-of 2026-11-23 --fail-on never - < examples/images.txt

## test: lint, type-check and run every test
test: tools lint typecheck unit

lint: $(STAMP)
	$(VENV)/bin/ruff check policy controller tests bench
	$(VENV)/bin/ruff format --check policy controller tests bench

typecheck: $(STAMP)
	$(VENV)/bin/mypy

unit: $(STAMP)
	$(PY) -m pytest -q

## e2e: only the end-to-end tests (real etcd + kube-apiserver, kubectl, helm; `make test` runs them too)
e2e: tools $(STAMP)
	$(PY) -m pytest -v -m e2e

## catalog: regenerate the embedded catalog from the upstream data
catalog: $(STAMP)
	$(VENV)/bin/dlc-guard catalog import $(UPSTREAM) --out policy/data/catalog.json

## bench: every benchmark (resolve, webhook vs floor, 50k-pod scan); bench-quick for a short run
bench: $(STAMP) $(VEGETA)
	$(PY) -m bench
	$(PY) -m bench --hostile

bench-quick: $(STAMP) $(VEGETA)
	$(PY) -m bench --quick --json

$(VEGETA): tools/vegeta/go.mod tools/vegeta/go.sum
	cd tools/vegeta && $(GOENV) go build -trimpath -o $@ github.com/tsenart/vegeta/v12

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
