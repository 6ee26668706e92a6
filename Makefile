# The two commands the README promises: `make serve` (set up, ingest the demo corpus, run) and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
# What `make clean` removes; the server itself reads POLICYQA_INDEX_DIR (default data/index).
INDEX  ?= data/index

.PHONY: install doc-tools browser serve test bench reranker clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first, pinned: the CPU wheel lies on local disk; unpinned, a multi-GB CUDA build downloads.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP) doc-tools

# Debian's antiword reads legacy Word .doc files (ingest/legacy_doc.py); without it they are refused.
doc-tools:
	@command -v antiword >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq antiword >/dev/null; \
	  else echo "reading legacy Word .doc files needs Debian's antiword: sudo apt-get install antiword"; fi; }

# Debian's chromium drives the browser test (Playwright may not download a browser here); a CJK font
# makes its screenshots readable.
browser:
	@command -v chromium >/dev/null && fc-list :lang=zh | grep -q . || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium fonts-wqy-microhei >/dev/null; \
	  else echo "the browser test needs Debian's chromium and a CJK font: sudo apt-get install chromium fonts-wqy-microhei"; fi; }

# Builds the model and ingests data/demo first when there is no index, then serves on localhost.
serve: install
	$(BIN)/policyqa serve

test: install browser
	$(BIN)/python -m pytest

bench: install
	$(BIN)/python bench/parse_speed.py

# Retrains the shipped reranker (data/reranker/) from the training questions: builds the index of the training
# documents (~25 min the first time), mines the pairs, trains one epoch (~55 min on 2 cores; stops at 60).
# Never run by CI.
reranker: install
	$(BIN)/python -m training.mine
	$(BIN)/python -m training.train --out data/reranker --minutes 90

clean:
	rm -rf $(VENV) $(INDEX)
