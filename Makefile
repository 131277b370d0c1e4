# ganforge: the two commands a newcomer runs are `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
# The pins of torch/torchvision live in constraints.txt and nowhere else.
INSTALL := $(PIP) install --quiet -c constraints.txt

.PHONY: demo test bench lint format install dev docs dist clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Stamps: reinstall when the package metadata or the pins change.
$(VENV)/.installed: pyproject.toml constraints.txt | $(BIN)/python
	$(INSTALL) -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(INSTALL) -e '.[dev]'
	touch $@

$(VENV)/.installed-docs: $(VENV)/.installed
	$(INSTALL) -e '.[docs]'
	touch $@

install: $(VENV)/.installed

dev: $(VENV)/.installed-dev

# Fetch MNIST offline, train the assignment's three GANs with its schedules (each evaluates
# itself at the end), then compare them.
demo: install
	$(BIN)/ganforge data fetch mnist
	@runs=runs/demo-$$(date +%Y%m%d-%H%M%S); \
	for preset in gan lsgan dcgan; do \
		echo "== ganforge train --preset $$preset --out $$runs/$$preset"; \
		$(BIN)/ganforge train --preset $$preset --out $$runs/$$preset || exit 1; \
	done; \
	echo "== ganforge compare $$runs/gan $$runs/lsgan $$runs/dcgan"; \
	$(BIN)/ganforge compare $$runs/gan $$runs/lsgan $$runs/dcgan --chart $$runs/compare.png

# Training speed against the assignment's loop and the matmul/conv limit (minutes; not a test).
bench: install
	$(BIN)/ganforge data fetch mnist
	$(BIN)/python benchmarks/bench_train.py --out benchmarks/results-$$(hostname)-$$(date +%Y%m%d).json

lint: dev
	$(BIN)/ruff check src tests benchmarks examples docs
	$(BIN)/ruff format --check src tests benchmarks examples docs
	$(BIN)/lint-imports

format: dev
	$(BIN)/ruff format src tests benchmarks examples docs
	$(BIN)/ruff check --fix src tests benchmarks examples docs

test: lint
	$(BIN)/python -m pytest

# The documentation site into site/, offline; --strict fails on any warning (a broken link or
# anchor, a page missing from the nav, a docstring mkdocstrings cannot read).
docs: $(VENV)/.installed-docs
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

# The sdist and the wheel built from it (so the sdist alone must be enough), by `python -m build`
# in a fresh isolated environment holding only pyproject.toml's build requirements, then checked.
dist: dev
	rm -rf dist
	$(BIN)/python -m build --outdir dist .
	$(BIN)/twine check --strict dist/*

clean:
	rm -rf $(VENV) build dist site *.egg-info src/*.egg-info .pytest_cache .ruff_cache
