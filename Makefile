# The two commands: `make run` (the demo) and `make test` (the whole suite).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 5000
STAMP := $(VENV)/.installed-stamp
DEMO := TVWIDGET_ENV=demo

.PHONY: run test install translations clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# The host kit (clients/python) is a package of its own; installed too, its tests run in the suite.
$(STAMP): $(BIN)/python setup.cfg pyproject.toml clients/python/pyproject.toml
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,postgres,server]'
	$(BIN)/python -m pip install --quiet -e clients/python
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(DEMO) $(BIN)/flask --app wsgi db upgrade
	$(DEMO) $(BIN)/flask --app wsgi tvwidget demo-setup
	$(DEMO) PORT=$(PORT) $(BIN)/python -m tvwidget.demo_host

test: $(STAMP)
	$(BIN)/python -m pytest

# Re-extract messages, merge them into the catalogs and compile (commit the result).
translations: $(STAMP)
	$(BIN)/pybabel extract -F babel.cfg -k _l -k lazy_gettext --project tvwidget --copyright-holder tvwidget -o tvwidget/translations/messages.pot --no-location --sort-output tvwidget templates
	$(BIN)/pybabel update -i tvwidget/translations/messages.pot -d tvwidget/translations --no-fuzzy-matching --ignore-obsolete
	$(BIN)/pybabel compile -d tvwidget/translations --statistics

clean:
	rm -rf $(VENV) build dist *.egg-info instance
