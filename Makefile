# Two commands for a new user: `make run` and `make test`.
# Each creates .venv if it is missing and installs rec_es into it first.
# torch==2.13.0 is installed before anything else so pip takes the local CPU build
# instead of resolving a multi-GB CUDA build for recbole's plain `torch` requirement.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.rec_es-installed
CONFIG ?= properties/gru4rec_ml100k.yaml
ARGS ?=

.PHONY: run test install clean-venv

install: $(STAMP)

$(PY):
	$(PYTHON) -m venv $(VENV)

# Reinstalls only when pyproject.toml changes (or the stamp is removed).
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install torch==2.13.0
	$(PY) -m pip install -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(PY) scripts/run_gru4rec.py --config $(CONFIG) $(ARGS)

test: $(STAMP)
	$(PY) -m pytest -q

clean-venv:
	rm -rf $(VENV)
