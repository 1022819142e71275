# Two commands do everything on a fresh machine:
#   make book   - install into .venv, execute every chapter (preset: $GAPKIT_PRESET, default book), HTML in _build/html
#   make test   - install into .venv and run the tests (unit tests and every notebook, quick preset)
#   make browser - the real-browser test of the quick-preset book (headless chromium)
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
TORCH  ?= torch==2.13.0
export GAPKIT_DATA_DIR ?= $(abspath ../shared/data)

.PHONY: book test browser dev clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[test,book]"
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $@

dev: $(VENV)/.installed

book: $(VENV)/.installed
	$(PY) -m gapkit book

test: $(VENV)/.installed
	GAPKIT_PRESET=quick GAPKIT_RESULTS_DIR=$${GAPKIT_RESULTS_DIR:-$$(mktemp -d)} \
	$(PY) -m pytest -n 2 -q --nbmake tests notebooks -m "not browser"

# The real-browser test of the quick-preset book (needs Debian's chromium). Not part of `make test`
# yet: jupyter-book's notebook execution intermittently hangs here (kernel and client both idle).
browser: $(VENV)/.installed
	GAPKIT_PRESET=quick $(PY) -m pytest -q -m browser tests

clean:
	rm -rf _build
