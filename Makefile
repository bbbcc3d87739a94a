# The two commands: `make run` (the demo) and `make test` (the whole suite).
# Both install the exact versions in requirements/lock.txt; `make lock` refreshes it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 5000
LOCK := requirements/lock.txt
STAMP := $(VENV)/.installed-stamp
DEMO := TVWIDGET_ENV=demo
# The lock constrains every install, build environments included (setuptools is pinned too).
PIP_INSTALL = PIP_CONSTRAINT=$(CURDIR)/$(LOCK) $(1)/python -m pip install --quiet --disable-pip-version-check
EXTRAS := .[test,postgres,server]
LOCAL := -e '$(EXTRAS)' -e clients/python

.PHONY: run test install lock test-latest translations clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# tvwidget with its extras, and the host kit (clients/python, a package of its own whose tests run in the suite).
$(STAMP): $(BIN)/python $(LOCK) setup.cfg pyproject.toml clients/python/pyproject.toml
	$(call PIP_INSTALL,$(BIN)) -r $(LOCK) $(LOCAL)
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(DEMO) $(BIN)/flask --app wsgi db upgrade
	$(DEMO) $(BIN)/flask --app wsgi tvwidget demo-setup
	$(DEMO) PORT=$(PORT) $(BIN)/python -m tvwidget.demo_host

test: $(STAMP)
	$(BIN)/python -m pytest

# Re-resolve the lock from setup.cfg's ranges and requirements/tools.in (commit the result).
lock: $(STAMP)
	$(BIN)/uv pip compile --quiet --universal --python-version 3.11 --custom-compile-command 'make lock' \
		setup.cfg requirements/tools.in --extra test --extra postgres --extra server -o $(LOCK)

# Optional: the whole suite on the newest releases setup.cfg allows, in a venv of its own (not in CI).
test-latest:
	rm -rf .venv-latest
	$(PYTHON) -m venv .venv-latest
	.venv-latest/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	.venv-latest/bin/python -m pip install --quiet --disable-pip-version-check --upgrade $(LOCAL)
	TVWIDGET_UNLOCKED=1 .venv-latest/bin/python -m pytest

# Re-extract messages, merge them into the catalogs and compile (commit the result).
translations: $(STAMP)
	$(BIN)/pybabel extract -F babel.cfg -k _l -k lazy_gettext --project tvwidget --copyright-holder tvwidget -o tvwidget/translations/messages.pot --no-location --sort-output tvwidget templates
	$(BIN)/pybabel update -i tvwidget/translations/messages.pot -d tvwidget/translations --no-fuzzy-matching --ignore-obsolete
	$(BIN)/pybabel compile -d tvwidget/translations --statistics

clean:
	rm -rf $(VENV) .venv-latest build dist *.egg-info instance
