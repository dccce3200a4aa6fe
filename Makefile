# The two set-up commands of the README. Both create the virtual environment if it is missing.
#   make demo   — install, then run the whole pipeline on the generated demo cohort (CPU, minutes)
#   make test   — install, then run the test suite
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
DEMO_OUT ?= demo_out
STAMP  := $(VENV)/.installed

.PHONY: demo test install clean-demo

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[dev]"
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (medcam-lab)" >/dev/null
	@touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/medcam-lab demo --out $(DEMO_OUT)

test: $(STAMP)
	$(VENV)/bin/ruff check medcam_lab tests benchmarks notebooks
	$(PY) -m pytest -q

clean-demo:
	rm -rf $(DEMO_OUT)
