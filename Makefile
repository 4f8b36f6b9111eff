# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
PORT ?= 8000
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: run test smoke install migrate clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@rm -f $(VENV)/.installed-*
	@touch $(STAMP)

install: $(STAMP)

migrate: install
	$(BIN)/python manage.py migrate --noinput

# Web server, Celery worker and beat on the embedded default (SQLite and a
# filesystem broker under var/). Plain HTTP on loopback, so cookies are not
# marked Secure. Ctrl-C stops all three.
run: migrate
	$(BIN)/python manage.py seed_demo --if-empty
	$(BIN)/python manage.py demo_setup
	$(BIN)/python manage.py collectstatic --noinput --verbosity 0
	@echo
	@echo "  csplatform: http://127.0.0.1:$(PORT)/"
	@echo "  sign in as admin@demo.example (or csm@demo.example), password: $${CSP_DEMO_PASSWORD:-demo}"
	@echo "  Ctrl-C stops the web server, the worker and beat."
	@echo
	PATH="$(CURDIR)/$(BIN):$$PATH" CSP_SECURE_COOKIES=0 $(BIN)/honcho start -f Procfile -p $(PORT)

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

smoke: install
	$(BIN)/python -m pytest -m smoke $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) var
