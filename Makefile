# The commands: `make run` (the demo), `make run-helpdesk` (the same in django-helpdesk) and `make test` (all suites).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 5000
HELPDESK_PORT ?= 8000
STAMP := $(VENV)/.installed-stamp
DEMO := TVWIDGET_ENV=demo

.PHONY: run run-helpdesk test install translations clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# The host kit (clients/python) and the django-helpdesk integration (integrations/django_helpdesk, with
# django-helpdesk) are packages of their own; installed too, their tests run in `make test`.
$(STAMP): $(BIN)/python setup.cfg pyproject.toml clients/python/pyproject.toml integrations/django_helpdesk/pyproject.toml
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,postgres,server]'
	$(BIN)/python -m pip install --quiet -e clients/python -e 'integrations/django_helpdesk[test]'
	$(BIN)/python -m pip check
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(DEMO) $(BIN)/flask --app wsgi db upgrade
	$(DEMO) $(BIN)/flask --app wsgi tvwidget demo-setup
	$(DEMO) PORT=$(PORT) $(BIN)/python -m tvwidget.demo_host

# django-helpdesk alongside tvwidget's demo: the helpdesk on localhost:$(HELPDESK_PORT), tvwidget on 127.0.0.1:$(PORT).
run-helpdesk: $(STAMP)
	PORT=$(PORT) HELPDESK_PORT=$(HELPDESK_PORT) $(BIN)/python integrations/django_helpdesk/demo/run.py

# tvwidget's suite, then the django-helpdesk integration's (Django settings of its own: a second pytest, on
# SQLite, and again on PostgreSQL when TVWIDGET_TEST_POSTGRES_URL is set); all run, any failing fails the target.
test: $(STAMP)
	status=0; \
	$(BIN)/python -m pytest -p no:django || status=$$?; \
	(cd integrations/django_helpdesk && ../../$(BIN)/python -m pytest) || status=$$?; \
	if [ -n "$$TVWIDGET_TEST_POSTGRES_URL" ]; then \
	  (cd integrations/django_helpdesk && HELPDESK_TEST_POSTGRES=1 ../../$(BIN)/python -m pytest -m "not slow") \
	    || status=$$?; \
	fi; \
	exit $$status

# Re-extract messages, merge them into the catalogs and compile (commit the result).
translations: $(STAMP)
	$(BIN)/pybabel extract -F babel.cfg -k _l -k lazy_gettext --project tvwidget --copyright-holder tvwidget -o tvwidget/translations/messages.pot --no-location --sort-output tvwidget templates
	$(BIN)/pybabel update -i tvwidget/translations/messages.pot -d tvwidget/translations --no-fuzzy-matching --ignore-obsolete
	$(BIN)/pybabel compile -d tvwidget/translations --statistics

clean:
	rm -rf $(VENV) build dist *.egg-info instance
