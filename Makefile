# Set-up and everyday commands. `make run` and `make test` work from a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LOCALES := ru en

.PHONY: run test repeat setup system-packages i18n bench mutate mutate-lines clean

# Renders every report of the example project for today and prints the paths written.
run: setup
	$(BIN)/reporter render kz-us
	$(BIN)/reporter render kz-uranium

# The suite runs in parallel processes (pytest-xdist), one per core up to four: most tests wait on
# a CLI subprocess, a server or a browser, and the slowest (200 reports through Celery) is better
# stolen from than queued behind. TEST_WORKERS=0 runs it in this one process.
TEST_WORKERS ?= auto --maxprocesses=4
PYTEST := $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist worksteal

test: setup
	$(PYTEST)

# The suite in a new random order each time (pytest-randomly), ROUNDS times in a row, stopping
# at the first failure: order and timing must never matter. Slow: about ROUNDS x 6 minutes.
ROUNDS ?= 20
repeat: setup
	for round in $$(seq $(ROUNDS)); do \
	  echo "round $$round of $(ROUNDS)"; \
	  $(PYTEST) -q -p randomly -p no:cacheprovider || exit 1; \
	done

setup: system-packages $(STAMP)

# WeasyPrint subsets fonts twice as fast with HarfBuzz's subsetter; pdftotext/pdffonts read PDFs back in tests.
system-packages:
	@./scripts/system-packages

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

# Babel's tools, for the theme's own strings (the package's layout and code): extract, merge into
# each catalogue, compile to check. A project's strings are reporter's job: `reporter i18n`.
i18n: setup
	$(BIN)/pybabel extract -F babel.cfg -k N_ -k _ -k gettext -k ngettext:1,2 \
	  --no-location --sort-output --project reporter -o reporter/theme/locale/messages.pot reporter
	for lang in $(LOCALES); do \
	  if [ -f reporter/theme/locale/$$lang/LC_MESSAGES/messages.po ]; then \
	    $(BIN)/pybabel update --no-fuzzy-matching --ignore-obsolete -i reporter/theme/locale/messages.pot -d reporter/theme/locale -l $$lang; \
	  else \
	    $(BIN)/pybabel init -i reporter/theme/locale/messages.pot -d reporter/theme/locale -l $$lang; \
	  fi; \
	done
	$(BIN)/pybabel compile --statistics -d reporter/theme/locale

# Mutation testing of the modules that carry the promises (docs/TESTING.md): not part of `make test`;
# hours for all of them on 2 cores, so MUTANTS can name some: make mutate MUTANTS='reporter.cron.*'.
# It starts from the results git keeps (docs/mutation-results.json) and tests only the mutants
# whose function or killing test changed, or that were never decided; it saves what it decides
# there again, also when a step fails. mutmut leaves out the PostgreSQL cases (for time); what
# survives it then runs against those.
MUTANTS ?=
mutate: setup
	$(BIN)/python scripts/mutation-record restore
	$(BIN)/mutmut run --max-children 2 $(MUTANTS) || { $(BIN)/python scripts/mutation-record save; exit 1; }
	$(BIN)/python scripts/mutation-postgresql || { $(BIN)/python scripts/mutation-record save; exit 1; }
	$(BIN)/python scripts/mutation-record save
	$(BIN)/python scripts/mutation-score

# Each mutant runs only the tests that ran its line, as noted by mutmut's first run; after a change
# to the code or the tests, this notes them again (about ten minutes), for the next `make mutate`.
mutate-lines: setup
	$(BIN)/python scripts/mutation-lines

# Every ratio of docs/BENCHMARKS.md, paired rounds side by side; about 12 minutes on 2 cores.
# ROUNDS=N sets the paired rounds (default 3: the 20 above is repeat's); QUICK=1 small sizes, no Celery.
bench: setup
	$(BIN)/python benchmarks/suite.py --rounds $(if $(filter command line,$(origin ROUNDS)),$(ROUNDS),3) $(if $(QUICK),--quick)

clean:
	rm -rf $(VENV) output mutants
