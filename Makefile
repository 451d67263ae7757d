# Two entry points on a fresh machine: `make demo` (the product on a local control plane) and
# `make test` (everything CI runs). `make unit`, `make integration` and `make e2e` run one suite.
#
# The virtualenvs live in the checkout (.venv, .venv-min), so two clones never install over each
# other's editable package. pip's own cache (~/.cache/pip) is shared, so a second clone installs
# from it; the control-plane binaries are shared too (see harness/kubeharness/build-controlplane.sh).
# The generic cluster harness (harness/, package kubeharness) is installed editable next to the
# provider; the demo and the benchmarks run as modules from here, so `tests.harness` imports too.
PYTHON ?= python3
VENV := $(CURDIR)/.venv
# The path is hashed too: a moved checkout reinstalls its editable package into the moved venv.
STAMP := $(VENV)/.installed-$(shell (cat pyproject.toml harness/pyproject.toml; echo $(CURDIR)) | sha256sum | cut -c1-12)
PY := $(VENV)/bin/python

.PHONY: venv venv-min controlplane lint unit integration e2e test test-min demo

$(STAMP): pyproject.toml harness/pyproject.toml
	@echo "==> Python environment in $(VENV) (first time: a few minutes for Airflow)"
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[test]" -e ./harness
	rm -f $(VENV)/.installed-* && touch $@

venv: $(STAMP)

controlplane:
	@echo "==> kube-apiserver + etcd (built from Go modules once, then cached)"
	bash harness/kubeharness/build-controlplane.sh >/dev/null

lint: venv
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

# No control plane and no Go: the unit tests talk to no API server.
unit: venv
	$(PY) -m pytest tests/unit -q

integration: venv controlplane
	$(PY) -m pytest tests/integration harness/kubeharness/tests -q

e2e: venv controlplane
	$(PY) -m pytest tests/e2e -q

test: venv controlplane lint
	$(PY) -m pytest tests harness/kubeharness/tests -q
	$(MAKE) test-min

# The same unit and integration suites on the oldest versions pyproject.toml accepts.
MIN_VENV := $(CURDIR)/.venv-min
MIN_STAMP := $(MIN_VENV)/.installed-$(shell (cat pyproject.toml harness/pyproject.toml .ci/min-versions.txt; echo $(CURDIR)) | sha256sum | cut -c1-12)

$(MIN_STAMP): pyproject.toml harness/pyproject.toml .ci/min-versions.txt
	@echo "==> Python environment with the lowest supported versions in $(MIN_VENV)"
	test -x $(MIN_VENV)/bin/python || $(PYTHON) -m venv $(MIN_VENV)
	$(MIN_VENV)/bin/python -m pip install -q -c .ci/min-versions.txt -e . -e ./harness pytest pytest-timeout hypothesis
	rm -f $(MIN_VENV)/.installed-* && touch $@

venv-min: $(MIN_STAMP)

test-min: venv-min controlplane
	$(MIN_VENV)/bin/python -m pytest tests/unit tests/integration harness/kubeharness/tests -q

demo: venv controlplane
	$(PY) -m demo.run_demo

# The churn soak, long: a real scheduler through SOAK_SECONDS of namespace, RBAC and API-server churn
# (tests/e2e/test_churn_soak.py runs a short one in `make test`). SOAK_SEED picks the churn.
SOAK_SECONDS ?= 480
.PHONY: soak
soak: venv controlplane
	SOAK_SECONDS=$(SOAK_SECONDS) $(PY) -m bench.soak

# The integration suite on K3s in Docker through testcontainers (the harness's `k3s` extra): its
# path for machines with a Docker engine but no control-plane binaries. NSDISCOVERY_CONTROL_PLANE
# makes it K3s even where Go could build the binaries; tests that crash kube-apiserver or etcd
# skip there. Needs a running Docker engine (CI's k3s job; not available on our build machines).
K3S_STAMP := $(VENV)/.installed-k3s-$(shell (cat pyproject.toml harness/pyproject.toml; echo $(CURDIR)) | sha256sum | cut -c1-12)

$(K3S_STAMP): $(STAMP)
	$(PY) -m pip install -q -e "./harness[k3s]"
	rm -f $(VENV)/.installed-k3s-* && touch $@

.PHONY: k3s
k3s: $(K3S_STAMP)
	NSDISCOVERY_CONTROL_PLANE=k3s $(PY) -m pytest tests/integration -q

# The benchmark (bench/nsbench): latency beside the bare-client floor, validation cost, start-up at
# N=10..1000 ours vs upstream, steady state; rewrites docs/benchmarks.md. BENCH_ARGS adds flags,
# e.g. BENCH_ARGS="--quick" (writes nothing) or BENCH_ARGS="--json raw.json" (keeps every sample).
BENCH_ARGS ?=
.PHONY: bench
bench: venv controlplane
	$(PY) -m bench.nsbench $(BENCH_ARGS)
