# Every target installs what it needs into a local virtualenv, so a fresh machine needs only python3 and make.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: venv demo test lint unit bench fuzz fuzz-long soak screenshots constraints clean

# The runtime dependencies at the versions the container image pins, so the suite tests what the image ships.
$(STAMP): pyproject.toml deploy/docker/constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --constraint deploy/docker/constraints.txt -e '.[dev]'
	touch $@

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/segwatch demo --live

lint: $(STAMP)
	$(BIN)/ruff check daemon tests
	$(BIN)/ruff format --check daemon tests
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/python -m pytest

test: lint unit

bench: $(STAMP)
	$(BIN)/python tests/bench/pipeline.py
	$(BIN)/python tests/bench/latency.py
	$(BIN)/python tests/bench/scan.py
	$(BIN)/python tests/bench/viewer.py

# README pictures, taken in headless Chromium (Debian's chromium and chromium-driver) from a real TensorBoard.
screenshots: $(STAMP)
	$(BIN)/python tests/screenshots/readme.py
	$(BIN)/python tests/screenshots/viewer.py

# A short coverage-guided fuzz of each target (the suite runs the same briefly); fuzz-long runs an hour each.
fuzz: $(STAMP)
	$(BIN)/python tests/fuzz/npy_header.py -runs=20000
	$(BIN)/python tests/fuzz/load_path.py -runs=2000
	$(BIN)/python tests/fuzz/config.py -runs=20000

fuzz-long: $(STAMP)
	mkdir -p .fuzz/npy_header .fuzz/load_path .fuzz/config
	$(BIN)/python tests/fuzz/npy_header.py -max_total_time=3600 -artifact_prefix=.fuzz/ .fuzz/npy_header
	$(BIN)/python tests/fuzz/load_path.py -max_total_time=3600 -artifact_prefix=.fuzz/ .fuzz/load_path
	$(BIN)/python tests/fuzz/config.py -max_total_time=3600 -artifact_prefix=.fuzz/ .fuzz/config

# The daemon against a steady producer for 10 minutes: memory, open files and throughput must stay flat.
soak: $(STAMP)
	$(BIN)/python tests/bench/soak.py

# Pin the container image's dependencies to the versions installed here (after an upgrade of the venv).
constraints: $(STAMP)
	$(BIN)/python deploy/docker/pin.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
