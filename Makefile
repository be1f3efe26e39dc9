# Two entry points for a fresh machine (Python 3.11, pip, git, gcc): `make demo` and `make test`.
# Everything else (venv, pinned helm/kubectl) is created on demand and reused.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
TOOLS  := $(CURDIR)/.tools/bin
export PATH := $(TOOLS):$(CURDIR)/$(BIN):$(PATH)
export DM_HELM_BIN ?= $(TOOLS)/helm
PYTEST_ARGS ?=

.PHONY: all venv tools test lint demo bench bench-service clean openstack test-openstack

all: test

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

venv: $(BIN)/.installed

tools: venv
	$(BIN)/python scripts/install_tools.py --dest $(TOOLS) --cache $(CURDIR)/.tools/cache

# One OpenStack release's services in their own venv (cached in ~/.cache/deploy-manager/openstack/).
openstack: venv
	nice -n 15 $(BIN)/python scripts/install_openstack.py

# The OpenStack tier: the real services from the demo cluster's renders (needs root; skips, saying why, without).
test-openstack: tools openstack
	@$(BIN)/python -m pytest -m openstack tests/openstack $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "error: pytest collected no tests" >&2; exit 1; fi; exit $$rc

# pytest exits 5 when it collected no test: that is a broken suite here, never a pass.
test: tools
	@$(BIN)/python -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "error: pytest collected no tests" >&2; exit 1; fi; exit $$rc

lint: venv
	$(BIN)/ruff check deploy_manager kubesim tests scripts bench

demo: tools
	$(BIN)/python scripts/demo.py

bench: tools
	$(BIN)/python -m bench.run

bench-service: tools
	$(BIN)/python -m bench.service_bench

clean:
	rm -rf $(VENV) .tools .pytest_cache
