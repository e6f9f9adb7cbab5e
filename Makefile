# Two commands set everything up on a fresh machine:
#   make demo   -- create .venv if needed, install, run the main job
#   make test   -- create .venv if needed, install with test extras, run the whole suite
# TORCH pins the CPU build that lies on this project's machines; override for a GPU build,
# e.g. `make test TORCH=torch`.
PYTHON ?= python3
TORCH ?= torch==2.13.0
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-slow install clean test-loaded signal-trials

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/approx-audit bounds list
	$(BIN)/approx-audit bounds show gd.smooth_convex.drori_teboulle_2014
	$(BIN)/approx-audit bounds eval gd.smooth_convex.drori_teboulle_2014 L=1 R=1 eta=1/L K=1,10,100,1000
	$(BIN)/approx-audit bounds complexity sgd.nonconvex.bottou_2018 --eps 0.05 L=1 sigma=0.1 Delta=1 eta=0.5/L
	$(BIN)/approx-audit check gd.smooth_convex.drori_teboulle_2014 --horizon 5
	$(BIN)/approx-audit run --workload logistic --optimizer sgd --lr 0.1 --steps 300 --out demo-audit

# pytest exits 5 when it collects no test: here that means the suite went missing, so it is
# reported as such and fails instead of passing silently.
# `make test` is the suite without the tests marked slow (real multi-process launches, real
# signals, the case study, long PEP grids): under 10 minutes on two busy cores.
# `make test-slow` runs those; CI (.ci/run) runs both.
test: $(STAMP)
	@$(BIN)/python -m pytest -q -m "not slow"; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests" >&2; exit 1; fi; \
	exit $$rc

test-slow: $(STAMP)
	@$(BIN)/python -m pytest -q -m slow; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test-slow: pytest collected no tests" >&2; exit 1; fi; \
	exit $$rc

# The suite as CI meets it on a shared machine: LOAD (default 2) CPU burners run beside it.
test-loaded: $(STAMP)
	@burners=""; for i in $$(seq $${LOAD:-2}); do yes > /dev/null & burners="$$burners $$!"; done; \
	trap 'kill $$burners 2>/dev/null' EXIT; $(MAKE) --no-print-directory test

# The Ctrl-C / SIGTERM tests N times (default 20) under LOAD burners; prints the pass count.
signal-trials: $(STAMP)
	@$(BIN)/python benchmarks/signal_trials.py --trials $${N:-20} --load $${LOAD:-2}

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
