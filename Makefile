# edgec: `make demo` and `make test` are the whole quick start (README).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: setup demo test bench clean toolchains

# Debian packages for cross builds, emulation, and the HTML report check (needs root; CI runs it).
APT_TOOLS := gcc clang cmake gcc-arm-none-eabi libnewlib-arm-none-eabi gcc-aarch64-linux-gnu \
             libc6-dev-arm64-cross qemu-user chromium
toolchains:
	@missing=$$(for p in $(APT_TOOLS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; fi

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(VENV)/bin/edgec inspect examples/digits_cnn.keras
	$(VENV)/bin/edgec compile examples/digits_cnn.keras -o out/digits --quantize int8 \
	    --calibration examples/digits_calib.npz --eval-data examples/digits_test.npz \
	    --emit tflite,c --target cortex-m4
	$(VENV)/bin/edgec eval out/digits --data examples/digits_test.npz --per-layer
	@if command -v arm-none-eabi-gcc >/dev/null; then \
	    $(VENV)/bin/edgec profile out/digits --target cortex-m4; \
	else echo "(edgec profile needs arm-none-eabi-gcc: make toolchains)"; fi
	@echo "open out/digits/report.html for the plots"

test: setup
	$(PY) -m pytest -n 2

BENCH_STAMP := $(VENV)/.bench-stamp
$(BENCH_STAMP): $(STAMP)
	$(PY) -m pip install -q -e '.[test,bench]'
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(PY) benchmarks/int8.py
	$(PY) benchmarks/c_backend.py
	$(PY) benchmarks/profile_m4.py
	$(PY) benchmarks/quantization.py
	$(PY) benchmarks/pruning.py
	$(PY) benchmarks/pruning_structured.py
	$(PY) benchmarks/sparse_kernels.py
	$(PY) benchmarks/factorize.py
	$(PY) benchmarks/deep_compression.py
	$(PY) benchmarks/distillation.py

clean:
	rm -rf out benchmarks/work
