# The course in two commands:
#   make lab    set up .venv (first time: a few minutes) and open JupyterLab
#   make test   set up .venv and run every test, notebooks included (fast mode)
#
# Only Python 3.10+ and make are needed; everything else goes into .venv.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PY     := $(BIN)/python
STAMP  := $(VENV)/.cnnkit-installed
KERNEL := cnn-course
# Two workers for a 2-core machine (loadgroup: grading tests share one worker, the rest spread);
# each kernel and worker then uses one thread, which also makes reruns give the same numbers.
JOBS   ?= 2
PYTEST_ARGS ?=

.PHONY: help setup lab test test-fast bench kernel lock clean student grade tensorboard

help:
	@echo "make lab     - set up .venv and open JupyterLab on notebooks/"
	@echo "make test    - set up .venv and run all tests (unit + notebooks in FAST mode)"
	@echo "make bench   - print the speed ratios (fit overhead, im2col conv vs F.conv2d)"
	@echo "make student - write the student release of notebooks/ into student/ (FORCE=1 to replace it)"
	@echo "make grade   - grade submissions/<student>/<notebook>.ipynb into grades/ (SUBMISSIONS=dir)"
	@echo "make tensorboard - serve the training runs in runs/ on http://127.0.0.1:6006"
	@echo "make lock    - re-resolve constraints.txt from requirements.txt"
	@echo "make clean   - remove .venv and caches"

setup: $(STAMP)

# Rebuilt whenever the dependency files change ("outdated" .venv).
$(STAMP): requirements.txt constraints.txt pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' || \
	  { echo "error: the course needs Python 3.10 or newer; '$(PYTHON)' is `$(PYTHON) --version 2>&1`."; \
	    echo "       install a newer Python, or run: make PYTHON=python3.11 lab"; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV) || \
	  { echo "error: could not create $(VENV). On Debian/Ubuntu: sudo apt install python3-venv"; exit 1; }
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -r requirements.txt -e .
	$(PY) -m ipykernel install --sys-prefix --name $(KERNEL) --display-name "Python (CNN course)" >/dev/null
	@touch $(STAMP)
	@echo "course environment ready in $(VENV) (kernel '$(KERNEL)')"

kernel: setup
	$(PY) -m ipykernel install --sys-prefix --name $(KERNEL) --display-name "Python (CNN course)"

# Extra options for JupyterLab, e.g. make lab LAB_ARGS="--no-browser --port 8890".
# As root (containers, WSL), Jupyter refuses to start without --allow-root.
LAB_ARGS ?=
ROOT_FLAG := $(if $(filter 0,$(shell id -u 2>/dev/null)),--allow-root,)

lab: setup
	$(BIN)/jupyter lab --notebook-dir=notebooks $(ROOT_FLAG) $(LAB_ARGS)

# pytest exits 5 when it collects no test (e.g. a PYTEST_ARGS filter that matches
# nothing); an empty run must not look green, so that becomes exit 1 with a message.
# Every other exit status is passed through unchanged.
test: setup
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 MPLBACKEND=Agg CNNKIT_DEVICE=cpu \
	  $(PY) -m pytest -n $(JOBS) --dist loadgroup $(PYTEST_ARGS) tests; \
	  status=$$?; if [ $$status -eq 5 ]; then echo "pytest collected no tests"; exit 1; fi; exit $$status

# Unit tests only (no notebook execution): seconds, for quick iterations.
test-fast: setup
	MPLBACKEND=Agg $(PY) -m pytest -n $(JOBS) -m "not notebook" $(PYTEST_ARGS) tests

bench: setup
	$(PY) benchmarks/bench_fit.py
	$(PY) benchmarks/bench_conv.py

# The local training dashboard: runs written by cnnkit.fit(..., log_dir="runs/NAME").
tensorboard: setup
	$(BIN)/tensorboard --logdir runs --host 127.0.0.1

# Instructor tools (README, "For instructors").
SUBMISSIONS ?= submissions
GRADE_ARGS  ?= -p FAST True
student: setup
	$(PY) -m cnnkit release --out student $(if $(FORCE),--force,)

grade: setup
	$(PY) -m cnnkit grade $(SUBMISSIONS) --out grades -j $(JOBS) $(GRADE_ARGS)

lock: setup
	$(PY) scripts/lock.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis build *.egg-info
	find . -name __pycache__ -prune -exec rm -rf {} +
