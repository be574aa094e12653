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

# The main job, offline, on the embedded MNIST sample: the seed-1 model, plain and denoising.
demo: $(STAMP)
	$(BIN)/aelab train conv-resize --data mnist-sample --epochs 20 --out runs/demo --overwrite --no-progress
	$(BIN)/aelab train conv-resize --data mnist-sample --epochs 20 --noise 0.5 --out runs/demo-denoise --overwrite --no-progress
	$(BIN)/aelab train best --param code_size=128 --data mnist-sample --epochs 100 --out runs/demo-best --overwrite --no-progress
	@echo "demo done: figures and metrics in runs/demo/, runs/demo-denoise/ and runs/demo-best/"

test: $(STAMP)
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python benchmarks/speed.py

clean:
	rm -rf runs build src/*.egg-info
