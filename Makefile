# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test install bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev,ui]'
	touch $(STAMP)

install: $(STAMP)

# The main job, offline, on the embedded MNIST digits: seed 1's model at the seed's optimiser
# steps, seed 1's denoiser and aelab's best, each beside PCA; a table and runs/demo/report.html.
demo: $(STAMP)
	$(BIN)/aelab demo --out runs/demo --overwrite

test: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python benchmarks/speed.py

clean:
	rm -rf runs build src/*.egg-info
