# The README's commands. Each target makes its own virtual environment on first use.
VENV   ?= .venv
PY     := $(VENV)/bin/python
PYTHON ?= python3
DEMO_OUT ?= demo-out
# Test processes (pytest-xdist): the machine's cores, at most 4 (each peaks near 6 GB). TEST_WORKERS=0 runs in one process.
TEST_WORKERS ?= $(shell n=$$(nproc 2>/dev/null || echo 1); [ $$n -gt 4 ] && n=4; echo $$n)

.PHONY: setup setup-all demo test test-all fuzz bench release clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

## setup-all: also PyTorch ([gpu-train], ~5 GB with its CUDA libraries) for edgecnn.torchtrain's tests, and Ray
##            ([cluster]) for `scan --cluster`'s
setup-all: $(VENV)/.installed-all

$(VENV)/.installed-all: $(VENV)/.installed
	$(PY) -m pip install -q -e '.[dev,gpu-train,cluster]'
	touch $@

## demo: data → train → quantize → export → bench → scan, on $$EDGECNN_DATA (else a Kaggle download: kagglehub
##       is in [dev], credentials in ~/.kaggle/kaggle.json; else synthetic). Reruns reuse finished steps.
demo: setup
	$(VENV)/bin/edgecnn demo --out $(DEMO_OUT)

## test: the test suite (real data when EDGECNN_DATA is set); PyTorch's and Ray's tests skip, saying why
## test-all: the same with PyTorch and Ray installed, so edgecnn.torchtrain and scan --cluster are tested too (what CI runs)
## pytest's "no tests" (5) is not a failure
test: setup
	@$(MAKE) --no-print-directory _pytest

test-all: setup-all
	@$(MAKE) --no-print-directory _pytest

_pytest:
	@set +e; $(PY) -m pytest tests -q -rs -p no:cacheprovider -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests"; exit 0; fi; exit $$rc

## fuzz: the readers' fuzz tests with 10,000 mutated inputs each (not in CI; docs/reliability.md). Address space
##       capped at 8 GB: a damaged file that makes a native reader allocate without bound fails the run, not the machine
fuzz: setup
	ulimit -v 8000000; EDGECNN_FUZZ_EXAMPLES=$${EDGECNN_FUZZ_EXAMPLES:-10000} $(PY) -m pytest tests/test_fuzz_readers.py -q -p no:cacheprovider

## bench: pytest-benchmark suites on the release model (not part of the tests)
bench: setup
	$(PY) -m pytest benchmarks --benchmark-only -p no:cacheprovider $(PYTEST_ARGS)

## release: retrain the committed release model from scratch (see docs/release.md)
release: setup
	bash scripts/release.sh

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache .benchmarks
