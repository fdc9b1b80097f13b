# mlsd: two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
SCALE  ?= small
OUT    ?= runs/demo
export RAY_USAGE_STATS_ENABLED := 0

.PHONY: setup demo test lint bench clean

setup: $(STAMP)

# torch==2.13.0 goes in first and on its own: pip's configuration here finds its CPU build
# locally, and once it is installed nothing else pulls the CUDA build.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "torch==2.13.0"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@# the browser test drives Debian's Chromium (never Playwright's download); without it, skipped
	command -v chromium >/dev/null || ( (apt-get update -qq && apt-get install -y -qq \
		--no-install-recommends chromium) >/dev/null 2>&1 \
		|| echo "chromium not installed: the browser test will be skipped")
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/mlsd run ad-click --scale $(SCALE) --out $(OUT)

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadgroup -q

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run

clean:
	rm -rf $(VENV) runs .pytest_cache .mypy_cache .ruff_cache
