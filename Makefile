# Two commands do everything on a fresh machine:
#   make book   - install into .venv, execute every chapter (preset: $GAPKIT_PRESET, default book), HTML in _build/html
#   make test   - install into .venv and run the tests (unit tests, every notebook, the book in a browser)
#   make browser - only the real-browser test of the quick-preset book (headless chromium)
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
TORCH  ?= torch==2.13.0
export GAPKIT_DATA_DIR ?= $(abspath ../shared/data)

.PHONY: book test browser chromium dev clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[test,book]"
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $@

# The tests also run grids on a real local Ray: the optional cluster extra.
$(VENV)/.cluster: $(VENV)/.installed
	$(PY) -m pip install -q -e ".[cluster]"
	touch $@

dev: $(VENV)/.installed

book: $(VENV)/.installed
	$(PY) -m gapkit book

# Two pytest workers on two cores, one OpenMP thread each (workers and the kernels they start):
# oversubscribed torch threads make the notebooks many times slower. The browser test skips when
# Debian's chromium is not installed, except in CI.
test: $(VENV)/.cluster chromium
	OMP_NUM_THREADS=1 GAPKIT_PRESET=quick GAPKIT_RESULTS_DIR=$${GAPKIT_RESULTS_DIR:-$$(mktemp -d)} \
	$(PY) -m pytest -n 2 -q --nbmake tests notebooks

# Only the real-browser test of the quick-preset book (needs Debian's chromium).
browser: $(VENV)/.installed chromium
	GAPKIT_PRESET=quick $(PY) -m pytest -q -m browser tests

# Debian's chromium for the browser test: installed when missing and apt-get can (root), else a note.
chromium:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	{ if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian's chromium for the browser test"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "note: chromium is not installed, so the browser test will skip (apt-get install chromium)"; fi; }

clean:
	rm -rf _build
