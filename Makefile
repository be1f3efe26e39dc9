# Two entry points for a fresh machine (Python 3.11, pip, git, gcc; Go >= 1.26 for the real control plane):
# `make demo` and `make test`. Everything else (venv, pinned helm/kubectl, the control plane's binaries) is
# created on demand and reused.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
TOOLS  := $(CURDIR)/.tools/bin
export PATH := $(TOOLS):$(CURDIR)/$(BIN):$(PATH)
export DM_HELM_BIN ?= $(TOOLS)/helm
PYTEST_ARGS ?=
ARGS ?=

.PHONY: all venv tools kube test test-kubesim test-kube test-kube-core lint demo demo-kube bench bench-service bench-drift crash-trials clean openstack test-openstack

all: test

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

venv: $(BIN)/.installed

tools: venv
	$(BIN)/python scripts/install_tools.py --dest $(TOOLS) --cache $(CURDIR)/.tools/cache

# kube-apiserver, kube-controller-manager, kube-scheduler, etcd and kwok, built from Go modules into
# ~/.cache/deploy-manager/kube/ (tens of minutes the first time, seconds after) and linked into .tools/kube/.
kube: venv
	$(BIN)/python scripts/install_kube.py

# The whole suite on kubesim and, beside it, every cluster test (marker `cluster`) on the real control plane
# (`test-kube`, after `make kube`): both halves mostly wait, so together they take about as long as the longer
# one (scripts/run_suites.py; the kube half's log is printed after). `test-kubesim` and `test-kube` run one
# half each. `test-kube-core` is the quick subset on the real backend: the helm/kubectl conformance
# suites, the launcher's own tests, the Lease, the manager under its chart's RBAC and drift.
test: tools
	@PYTEST_ARGS="$(PYTEST_ARGS)" $(BIN)/python scripts/run_suites.py

KUBE_CORE_TESTS := tests/kubesim/test_helm_conformance.py tests/kubesim/test_kubectl_conformance.py \
	tests/kubecluster tests/kube tests/test_lease.py tests/deploy_chart/test_rbac_on_kube.py \
	tests/test_drift.py tests/reconcile/test_correct_drift.py tests/kubesim/test_differential.py

test-kube-core: tools kube
	@DM_TEST_CLUSTER=kube $(BIN)/python -m pytest -m cluster $(KUBE_CORE_TESTS) $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "error: pytest collected no tests" >&2; exit 1; fi; exit $$rc

# kubesim against the real control plane: the conformance suites' helm/kubectl operations on both, every
# object compared; prints each difference and fails on one kubesim.differential.ACCEPTED does not name (~40 s).
.PHONY: conformance-diff
conformance-diff: tools kube
	$(BIN)/python -m kubesim.differential $(ARGS)

# One OpenStack release's services in their own venv (cached in ~/.cache/deploy-manager/openstack/).
openstack: venv
	nice -n 15 $(BIN)/python scripts/install_openstack.py

# The OpenStack tier: the real services from the demo cluster's renders (needs root; skips, saying why, without).
test-openstack: tools openstack
	@$(BIN)/python -m pytest -m openstack tests/openstack $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "error: pytest collected no tests" >&2; exit 1; fi; exit $$rc

# pytest exits 5 when it collected no test: that is a broken suite here, never a pass.
test-kubesim: tools
	@$(BIN)/python -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "error: pytest collected no tests" >&2; exit 1; fi; exit $$rc

test-kube: tools kube
	@DM_TEST_CLUSTER=kube $(BIN)/python -m pytest -m cluster $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "error: pytest collected no tests" >&2; exit 1; fi; exit $$rc

# ruff everywhere; mypy --strict on the product (kubesim stays at its own level: see pyproject's overrides).
lint: venv
	$(BIN)/ruff check deploy_manager kubesim kubecluster tests scripts bench
	$(BIN)/mypy --strict deploy_manager

# `make demo ARGS=--once`: tell the story and stop (as CI does); without it the service keeps serving until Ctrl-C.
demo: tools
	$(BIN)/python scripts/demo.py $(ARGS)

# The same demo on the real control plane (RBAC enforced, real controllers, kwok nodes).
demo-kube: tools kube
	DM_DEMO_CLUSTER=kube $(BIN)/python scripts/demo.py $(ARGS)

bench: tools
	$(BIN)/python -m bench.run

bench-service: tools
	$(BIN)/python -m bench.service_bench

bench-drift: tools
	$(BIN)/python -m bench.drift_bench $(ARGS)

crash-trials: tools
	$(BIN)/python -m bench.crash_trials $(ARGS)

clean:
	rm -rf $(VENV) .tools .pytest_cache
