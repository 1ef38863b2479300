# smictl — every target creates and uses the local virtual environment in .venv.
# `make demo` and `make test` are the two commands a fresh machine needs.

# The interpreter the venv is made from: the distribution's CPython 3.11 where there is one
# (Debian builds it with profile-guided optimisation and LTO, the interpreter linked statically),
# before whatever `python3` comes first on PATH (here pyenv's 3.11.7, a default build without
# either): the proxy spends about 8 % less CPU per request on it, and a hop adds less latency
# (docs/proxy.md, "The interpreter"). PYTHON=... overrides; python3 if that one cannot make a venv.
PYTHON ?= $(or $(wildcard /usr/bin/python3.11),python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
ARGS   ?=

.PHONY: install demo test lint unit bench clean

# setup.py compiles the proxy's request path with mypyc (a C compiler and the Python headers are
# on every machine here); the build is redone when a proxy module changes, and until then
# proxy.native runs the sources of an edited checkout (with a warning), never stale code.
$(STAMP): pyproject.toml constraints.txt setup.py $(wildcard proxy/*.py)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); python3 -m venv $(VENV); }
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	$(BIN)/python pgo.py
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/python -m conformance.demo $(ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy

unit: install
	$(BIN)/pytest $(ARGS)

# The suite runs on the compiled request path (and fails if it is not the one running), then
# the proxy's unit tests once more on the pure-Python sources, the form used where nothing
# can be compiled.
test: lint
	SMICTL_REQUIRE_NATIVE=1 $(BIN)/pytest $(ARGS)
	SMICTL_PURE_PYTHON=1 $(BIN)/pytest tests/unit/proxy

# Debian packages the side-by-side benchmarks compare against (we are root on these machines).
bench-deps:
	@command -v nginx >/dev/null && command -v wrk >/dev/null && command -v hey >/dev/null && \
	  command -v dot >/dev/null || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light wrk hey graphviz >/dev/null)

bench: install bench-deps
	$(BIN)/python bench/run_all.py $(ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
