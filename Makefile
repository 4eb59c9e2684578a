# Two commands do all set-up on a fresh machine: `make run` and `make test`.
VENV    ?= .venv
PYTHON  ?= python3
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed

.PHONY: run test bench fuzz crash site-check browser docs reference clean

# constraints.txt pins every dependency to the versions the published outputs were made with,
# so plots and tables are byte-identical on every machine.
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test]'
	touch $(STAMP)

run: $(STAMP)          ## install, validate the sheets, run every analysis, publish outputs
	$(BIN)/meta validate
	$(BIN)/meta run

test: $(STAMP) browser ## install (with Chromium for the site test) and run the test suite
	$(BIN)/python -m pytest

browser:               ## Debian's Chromium, for the browser test and site-check
	@command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null)

site-check: run browser ## render the site headless and save site-check.png for a person to look at
	$(BIN)/python -m meta.publish.browser site/index.html site-check.png

docs: $(STAMP)         ## the API reference from the docstrings (pdoc), offline, into docs/api/
	$(BIN)/pdoc meta -o docs/api

bench: $(STAMP)        ## benchmark meta batch against PyMARE and metafor, and the 19 dose-response curves against R (see benchmarks/RESULTS.md)
	$(BIN)/python benchmarks/bench.py
	$(BIN)/python benchmarks/bench_doseresponse.py

fuzz: $(STAMP)         ## seeded sheet fuzzer: 10,000 sheets through `meta pool` (about 1 min)
	$(BIN)/python -m pytest -m fuzz

crash: $(STAMP)        ## crash safety: 120 SIGKILLs of meta add/run and a race of two `add --run` (about 5 min)
	$(BIN)/python -m pytest -m slow

reference:             ## regenerate metafor reference values (needs Rscript with metafor)
	Rscript reference/make_reference.R
	Rscript reference/make_bias_reference.R
	Rscript reference/make_metareg_reference.R
	Rscript reference/make_smallstudy_reference.R
	Rscript reference/make_tsa_reference.R   # needs r-cran-rpact

clean:
	rm -rf $(VENV) .pytest_cache docs/api
