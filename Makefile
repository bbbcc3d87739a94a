# The commands: `make run` (the demo), `make run-helpdesk` (the same in django-helpdesk) and `make test` (all suites).
# All install the exact versions in requirements/lock.txt; `make lock` refreshes it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 5000
HELPDESK_PORT ?= 8000
LOCK := requirements/lock.txt
STAMP := $(VENV)/.installed-stamp
DEMO := TVWIDGET_ENV=demo
# The lock constrains every install, build environments included (setuptools is pinned too).
PIP_INSTALL = PIP_CONSTRAINT=$(CURDIR)/$(LOCK) $(1)/python -m pip install --quiet --disable-pip-version-check
# The repository's own packages: tvwidget with its extras, the host kit (clients/python) and the
# django-helpdesk integration (integrations/django_helpdesk); their tests all run in `make test`.
LOCAL := -e '.[test,postgres,server]' -e clients/python -e 'integrations/django_helpdesk[test]'
LOCAL_PROJECTS := setup.cfg pyproject.toml clients/python/pyproject.toml integrations/django_helpdesk/pyproject.toml

.PHONY: run run-helpdesk test suites install lock test-latest translations clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python $(LOCK) $(LOCAL_PROJECTS)
	$(call PIP_INSTALL,$(BIN)) -r $(LOCK) $(LOCAL)
	$(BIN)/python -m pip check
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(DEMO) $(BIN)/flask --app wsgi db upgrade
	$(DEMO) $(BIN)/flask --app tvwidget.demo tvwidget demo-setup
	$(DEMO) PORT=$(PORT) $(BIN)/python -m tvwidget.demo.host

# django-helpdesk alongside tvwidget's demo: the helpdesk on localhost:$(HELPDESK_PORT), tvwidget on 127.0.0.1:$(PORT).
run-helpdesk: $(STAMP)
	PORT=$(PORT) HELPDESK_PORT=$(HELPDESK_PORT) $(BIN)/python integrations/django_helpdesk/demo/run.py

# tvwidget's suite, then the django-helpdesk integration's (Django settings of its own: a second pytest, on
# SQLite, and again on PostgreSQL when TVWIDGET_TEST_POSTGRES_URL is set); all run, any failing fails the target.
test: $(STAMP)
	$(MAKE) --no-print-directory suites PY=../../$(BIN)/python ROOTPY=$(BIN)/python

suites:
	status=0; \
	$(dir $(ROOTPY))lint-imports --no-cache || status=$$?; \
	$(dir $(ROOTPY))ruff check --no-cache . || status=$$?; \
	$(ROOTPY) -m pytest -p no:django || status=$$?; \
	(cd integrations/django_helpdesk && $(PY) -m pytest) || status=$$?; \
	if [ -n "$$TVWIDGET_TEST_POSTGRES_URL" ]; then \
	  (cd integrations/django_helpdesk && HELPDESK_TEST_POSTGRES=1 $(PY) -m pytest -m "not slow") \
	    || status=$$?; \
	fi; \
	exit $$status

# Re-resolve the lock from the projects' ranges and requirements/tools.in, then reinstall (commit the result).
lock: $(STAMP)
	$(BIN)/uv pip compile --quiet --universal --python-version 3.11 --custom-compile-command 'make lock' \
		requirements/local.in requirements/tools.in -o $(LOCK) \
		--no-emit-package tvwidget --no-emit-package tvwidget-host --no-emit-package tvwidget-django-helpdesk
	$(MAKE) --no-print-directory install

# Optional: every suite on the newest releases the projects allow, in a venv of its own (not in CI).
test-latest:
	rm -rf .venv-latest
	$(PYTHON) -m venv .venv-latest
	.venv-latest/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	.venv-latest/bin/python -m pip install --quiet --disable-pip-version-check --upgrade $(LOCAL)
	TVWIDGET_UNLOCKED=1 $(MAKE) --no-print-directory suites PY=../../.venv-latest/bin/python ROOTPY=.venv-latest/bin/python

# Re-extract messages, merge them into the catalogs and compile (commit the result).
translations: $(STAMP)
	$(BIN)/pybabel extract -F babel.cfg -k _l -k lazy_gettext --project tvwidget --copyright-holder tvwidget -o tvwidget/translations/messages.pot --no-location --sort-output tvwidget templates
	$(BIN)/pybabel update -i tvwidget/translations/messages.pot -d tvwidget/translations --no-fuzzy-matching --ignore-obsolete
	$(BIN)/pybabel compile -d tvwidget/translations --statistics

clean:
	rm -rf $(VENV) .venv-latest build dist *.egg-info instance
