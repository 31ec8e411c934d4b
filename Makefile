# Two commands for a new user: `make run` and `make test`.
# Each creates .venv if it is missing and installs rec_es into it first (docs/install.md explains every step).
# 1. The interpreter is checked before anything is created: PYTHON (default python3) must be one of
#    SUPPORTED_PYTHONS, or make stops and names the ones it found, e.g. `make run PYTHON=python3.11`.
# 2. pip installs torch==2.13.0 first, so on Python 3.11 it takes the local CPU build instead of resolving a
#    multi-GB CUDA build for RecBole's plain `torch` requirement (on other Pythons it comes from the registry),
#    and installs uv, pinned to the minor release this was tested with.
# 3. uv installs rec_es: it applies pyproject.toml's [tool.uv] override-dependencies (RecBole 1.2.1 pins
#    ray<=2.6.3, which has no wheels for Python >= 3.12) and keeps the torch of step 2 (asked for again, so uv
#    fails rather than swap in another build). It compiles bytecode as pip does by default (uv does not), or
#    every import compiles RecBole, sklearn, ... anew.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.rec_es-installed
CONFIG ?= properties/gru4rec_ml100k.yaml
ARGS ?=
# Kept equal to requires-python in pyproject.toml (tests/test_install.py checks it).
SUPPORTED_PYTHONS := 3.10 3.11 3.12 3.13
UV_REQUIREMENT := uv>=0.13,<0.14
TORCH_REQUIREMENT := torch==2.13.0

MUTATE_STAMP := $(VENV)/.rec_es-mutate-installed

.PHONY: run test mutate install check-python clean-venv

install: $(STAMP)

# Exits non-zero, before any venv or install, when PYTHON is missing, of an unsupported version, or cannot
# make a venv (Debian and Ubuntu ship venv/ensurepip separately, as python3.X-venv).
check-python:
	@v=$$($(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null) || v=none; \
	case " $(SUPPORTED_PYTHONS) " in *" $$v "*) $(PYTHON) -c 'import ensurepip, venv' 2>/dev/null && exit 0; \
	  echo "rec_es: PYTHON=$(PYTHON) is Python $$v without venv/ensurepip, so it cannot make a venv with pip:" \
	    "install it (Debian/Ubuntu: apt install python$$v-venv) or pick another interpreter with PYTHON=." >&2; \
	  exit 1;; esac; \
	if [ "$$v" = none ]; then echo "rec_es: PYTHON=$(PYTHON) is not a Python interpreter that runs here." >&2; \
	else echo "rec_es: PYTHON=$(PYTHON) is Python $$v; rec_es supports Python $(SUPPORTED_PYTHONS)." >&2; fi; \
	found=""; pyenv_root=$$(pyenv root 2>/dev/null); \
	for s in $(SUPPORTED_PYTHONS); do \
	  if python$$s -c "" >/dev/null 2>&1; then found="$$found python$$s"; \
	  else for p in $$pyenv_root/versions/$$s*/bin/python$$s; do [ -x "$$p" ] && found="$$found $$p"; done; fi; \
	done; \
	if [ -n "$$found" ]; then echo "Supported interpreters found here:$$found" >&2; \
	else echo "No Python $(SUPPORTED_PYTHONS) found here: install one (e.g. apt install python3.11, or pyenv)." >&2; fi; \
	set -- $$found python3.11; \
	echo "Pick one with PYTHON=, e.g.: make run PYTHON=$$1   (and make test PYTHON=$$1)" >&2; \
	exit 1

$(PY):
	@$(MAKE) --no-print-directory check-python PYTHON='$(PYTHON)'
	$(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); exit 1; }

# Reinstalls only when pyproject.toml or these install steps change (or the stamp is removed).
$(STAMP): pyproject.toml Makefile | $(PY)
	$(PY) -m pip install '$(TORCH_REQUIREMENT)' '$(UV_REQUIREMENT)'
	$(VENV)/bin/uv pip install --python $(PY) --compile-bytecode -e '.[test]' '$(TORCH_REQUIREMENT)'
	touch $(STAMP)

run: $(STAMP)
	$(PY) scripts/run_gru4rec.py --config $(CONFIG) $(ARGS)

# two workers (pytest-xdist), a test file at a time on each: the suite's CPU time is about 7.5 minutes, the
# machine has 2 cores (docs/benchmarks.md, "The test suite"); `pytest -q` alone runs it in one process
test: $(STAMP)
	$(PY) -m pytest -q -n 2 --dist loadfile

# Mutation testing (docs/mutation.md): not part of `make test`; hours, one worker. GROUPS picks groups of
# scripts/mutate.py (default all), ARGS passes more options, e.g. make mutate GROUPS=per_user ARGS=--survivors
GROUPS ?=
$(MUTATE_STAMP): $(STAMP)
	$(VENV)/bin/uv pip install --python $(PY) --compile-bytecode -e '.[test,mutate]' '$(TORCH_REQUIREMENT)'
	touch $(MUTATE_STAMP)

mutate: $(MUTATE_STAMP)
	$(PY) scripts/mutate.py $(GROUPS) $(ARGS)

clean-venv:
	rm -rf $(VENV)
