# The two set-up commands of the README. Both create the virtual environment if it is missing.
#   make demo   — install, then run the whole pipeline on the generated demo cohort (CPU, minutes)
#   make test   — install, then run the test suite
#   make reproduce — the paper's tables (every row the data allow) on the demo output, with the demo preset
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
DEMO_OUT ?= demo_out
STAMP  := $(VENV)/.installed

.PHONY: demo test install clean-demo reproduce

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[dev]"
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (medcam-lab)" >/dev/null
	@touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/medcam-lab demo --out $(DEMO_OUT)

reproduce: $(STAMP)
	@test -f $(DEMO_OUT)/cohort/pairs.parquet || $(MAKE) demo
	$(VENV)/bin/medcam-lab reproduce --suite paper --preset demo --data-root $(DEMO_OUT) --out reproduce_out

test: $(STAMP)
	$(VENV)/bin/ruff check medcam_lab tests benchmarks notebooks
	$(VENV)/bin/mypy
	$(PY) -m pytest -q

clean-demo:
	rm -rf $(DEMO_OUT)
