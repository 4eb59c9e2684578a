# Two commands do all set-up on a fresh machine: `make run` and `make test`.
VENV    ?= .venv
PYTHON  ?= python3
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed

.PHONY: run test test-all bench site-check reference clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)          ## install, validate the sheets, run every analysis, publish outputs
	$(BIN)/meta validate
	$(BIN)/meta run

test: $(STAMP)         ## install and run the test suite
	$(BIN)/python -m pytest

reference:             ## regenerate metafor reference values (needs Rscript with metafor)
	Rscript reference/make_reference.R

clean:
	rm -rf $(VENV) .pytest_cache
