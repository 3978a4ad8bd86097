# edgec: `make demo` and `make test` are the whole quick start (README).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: setup demo test bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(VENV)/bin/edgec inspect examples/digits_cnn.keras
	$(VENV)/bin/edgec compile examples/digits_cnn.keras -o out/digits --quantize int8 \
	    --calibration examples/digits_calib.npz --eval-data examples/digits_test.npz
	$(VENV)/bin/edgec eval out/digits --data examples/digits_test.npz

test: setup
	$(PY) -m pytest -n 2

BENCH_STAMP := $(VENV)/.bench-stamp
$(BENCH_STAMP): $(STAMP)
	$(PY) -m pip install -q -e '.[test,bench]'
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(PY) benchmarks/int8.py

clean:
	rm -rf out benchmarks/work
