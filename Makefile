# Two entry points on a fresh machine: `make demo` (the product on a local control plane) and
# `make test` (everything CI runs). Both build what they need once and cache it under ~/.cache.
PYTHON ?= python3
CACHE := $(HOME)/.cache/airflow-provider-nsdiscovery
VENV := $(CACHE)/venv
# The stamp covers the checkout path too: the install is editable, so a new clone reinstalls.
STAMP := $(VENV)/.installed-$(shell (cat pyproject.toml; echo $(CURDIR)) | sha256sum | cut -c1-12)
PY := $(VENV)/bin/python

.PHONY: venv controlplane lint test test-min demo

$(STAMP): pyproject.toml
	@echo "==> Python environment in $(VENV) (first time: a few minutes for Airflow)"
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[test]"
	rm -f $(VENV)/.installed-* && touch $@

venv: $(STAMP)

controlplane:
	@echo "==> kube-apiserver + etcd (built from Go modules once, then cached)"
	bash tests/harness/build-controlplane.sh >/dev/null

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

test: venv controlplane lint
	$(PY) -m pytest tests -q
	$(MAKE) test-min

# The same unit and integration suites on the oldest versions pyproject.toml accepts.
MIN_VENV := $(CACHE)/venv-min
MIN_STAMP := $(MIN_VENV)/.installed-$(shell (cat pyproject.toml ci/min-versions.txt; echo $(CURDIR)) | sha256sum | cut -c1-12)

$(MIN_STAMP): pyproject.toml ci/min-versions.txt
	@echo "==> Python environment with the lowest supported versions in $(MIN_VENV)"
	test -x $(MIN_VENV)/bin/python || $(PYTHON) -m venv $(MIN_VENV)
	$(MIN_VENV)/bin/python -m pip install -q -c ci/min-versions.txt -e . pytest pytest-timeout hypothesis
	rm -f $(MIN_VENV)/.installed-* && touch $@

test-min: $(MIN_STAMP) controlplane
	$(MIN_VENV)/bin/python -m pytest tests/unit tests/integration -q

demo: venv controlplane
	$(PY) demo/run_demo.py
