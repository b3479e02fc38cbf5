# Every target creates .venv when it is missing, so a fresh clone needs only `make demo` or `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-slow bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/zrenie classify train digits_cnn out=runs/demo overwrite=true
	@echo 'zrenie is installed in .venv: run ". .venv/bin/activate" (then "zrenie --help"), or call .venv/bin/zrenie'

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

bench: $(STAMP)
	$(BIN)/python benchmarks/engine_overhead.py
	$(BIN)/python benchmarks/digits_time_to_accuracy.py
	$(BIN)/python benchmarks/architectures.py
	$(BIN)/python benchmarks/imgproc.py

clean:
	rm -rf $(VENV) runs
