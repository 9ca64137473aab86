# Quick start:  make train   |   make test      (both create .venv at the repo root when needed)
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# CPU set-up: the CPU wheels of torch, tensorflow-cpu (never tensorflow as well) and jax (PyPI's jax
# is CPU-only). GPU users install the project's extras instead: pip install -e '.[torch]' / '.[tf]' /
# '.[jax]' / '.[all]', then their CUDA build (e.g. pip install -U "jax[cuda12]").
CPU_PINS := torch==2.13.0 "tensorflow-cpu==2.21.*" "keras>=3.5" jax==0.10.2 jaxlib==0.10.2
ARGS ?=

.PHONY: setup train test clean

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(CPU_PINS)
	# editable "compat" mode puts the repo on sys.path, so Hydra finds hydra_plugins/ too
	$(PY) -m pip install -q -e ".[torch,dev,export]" --config-settings editable_mode=compat
	touch $(STAMP)

train: setup
	$(PY) train.py encoder=bilstm backend=torch $(ARGS)

test: setup
	$(PY) -m pytest -q $(ARGS)

clean:
	rm -rf $(VENV) outputs multirun .pytest_cache
