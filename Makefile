# Two entry points for a fresh machine (Python 3.11, pip, git, gcc): `make demo` and `make test`.
# Everything else (venv, pinned helm/kubectl) is created on demand and reused.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
TOOLS  := $(CURDIR)/.tools/bin
export PATH := $(TOOLS):$(CURDIR)/$(BIN):$(PATH)
export DM_HELM_BIN ?= $(TOOLS)/helm
PYTEST_ARGS ?=
ARGS ?=

.PHONY: all venv tools test lint demo bench bench-service crash-trials clean

all: test

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

venv: $(BIN)/.installed

tools: venv
	$(BIN)/python scripts/install_tools.py --dest $(TOOLS) --cache $(CURDIR)/.tools/cache

# pytest exits 5 when it collected no test: that is a broken suite here, never a pass.
test: tools
	@$(BIN)/python -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "error: pytest collected no tests" >&2; exit 1; fi; exit $$rc

# ruff everywhere; mypy --strict on the product (kubesim stays at its own level: see pyproject's overrides).
lint: venv
	$(BIN)/ruff check deploy_manager kubesim tests scripts bench
	$(BIN)/mypy --strict deploy_manager

# `make demo ARGS=--once`: tell the story and stop (as CI does); without it the service keeps serving until Ctrl-C.
demo: tools
	$(BIN)/python scripts/demo.py $(ARGS)

bench: tools
	$(BIN)/python -m bench.run

bench-service: tools
	$(BIN)/python -m bench.service_bench

crash-trials: tools
	$(BIN)/python -m bench.crash_trials $(ARGS)

clean:
	rm -rf $(VENV) .tools .pytest_cache
