# The two commands the README promises: `make serve` (set up, ingest the demo corpus, run) and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
INDEX  ?= data/index

.PHONY: install serve test bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first, pinned: the CPU wheel lies on local disk; unpinned, a multi-GB CUDA build downloads.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

serve: install
	@test -f $(INDEX)/CURRENT || $(BIN)/policyqa ingest data/demo --index-dir $(INDEX)
	@echo "index ready in $(INDEX); the web server arrives with issue 4 (search API and page)"

test: install
	$(BIN)/python -m pytest

bench: install
	$(BIN)/python bench/parse_speed.py

clean:
	rm -rf $(VENV) $(INDEX)
