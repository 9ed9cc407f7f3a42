# The README's commands. Each target makes its own virtual environment on first use.
VENV   ?= .venv
PY     := $(VENV)/bin/python
PYTHON ?= python3
DEMO_OUT ?= demo-out

.PHONY: setup demo test bench release clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

## demo: data → train → quantize → export → bench → scan, on $$EDGECNN_DATA (else a Kaggle download: kagglehub
##       is in [dev], credentials in ~/.kaggle/kaggle.json; else synthetic). Reruns reuse finished steps.
demo: setup
	$(VENV)/bin/edgecnn demo --out $(DEMO_OUT)

## test: the test suite (real data when EDGECNN_DATA is set); pytest's "no tests" (5) is not a failure
test: setup
	@set +e; $(PY) -m pytest tests -q -p no:cacheprovider $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests"; exit 0; fi; exit $$rc

## bench: pytest-benchmark suites on the release model (not part of the tests)
bench: setup
	$(PY) -m pytest benchmarks --benchmark-only -p no:cacheprovider $(PYTEST_ARGS)

## release: retrain the committed release model from scratch (see docs/release.md)
release: setup
	bash scripts/release.sh

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache .benchmarks
