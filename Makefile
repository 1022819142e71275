# Two commands do everything on a fresh machine:
#   make book   - install into .venv, execute every chapter (preset: $GAPKIT_PRESET, default book), HTML in _build/html
#   make test   - install into .venv and run the tests (unit tests, every notebook, the book in a browser)
#   make browser - only the real-browser test of the quick-preset book (headless chromium)
#   make paper-smoke - every experiment at the paper preset with every loop capped (gapkit.smoke), 2 at a time
#   make estimates - the paper preset's cost estimates from smoke runs -> book/_data/estimates.json
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
TORCH  ?= torch==2.13.0
export GAPKIT_DATA_DIR ?= $(abspath ../shared/data)

.PHONY: book test browser chromium dev clean paper-smoke estimates

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

# Every experiment end to end at the paper preset, loops capped (gapkit.smoke): two processes, one
# thread each, results in a fresh folder; prints each experiment's wall time. `make test` runs the
# same through tests/test_paper_smoke.py.
paper-smoke: $(VENV)/.installed
	@dir=$${GAPKIT_RESULTS_DIR:-$$(mktemp -d)}; start=$$(date +%s); \
	$(PY) -c "from gapkit.experiments import registry; print(*registry(), sep='\n')" | \
	OMP_NUM_THREADS=1 GAPKIT_RESULTS_DIR=$$dir GAPKIT_PROGRESS=0 xargs -P 2 -I{} sh -c \
	  's=$$(date +%s); $(PY) -m gapkit run {} --preset paper --smoke --no-progress >/dev/null && echo "{}: $$(( $$(date +%s) - s )) s" || { echo "{}: FAILED"; exit 1; }' && \
	echo "paper-smoke: every experiment in $$(( $$(date +%s) - start )) s (results in $$dir)"

# The experiments page's paper-preset costs: smoke runs measured on this machine (one thread).
estimates: $(VENV)/.installed
	OMP_NUM_THREADS=1 GAPKIT_PROGRESS=0 $(PY) -m gapkit estimate --all --preset paper --write --no-progress

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
