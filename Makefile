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

# honcho SIGKILLs what has not stopped 5 s after Ctrl-C, a constant it has no option for. An idle Celery worker on
# the filesystem broker notices the signal only at the end of its current 2-second wait for messages and then
# waits once more (celery's synloop), so it needs up to about 5 s on a busy machine: it gets 10.
define HONCHO_WITH_LONGER_GRACE
import honcho.command, honcho.manager; honcho.manager.KILL_WAIT = 10; honcho.command.main()
endef
export HONCHO_WITH_LONGER_GRACE

# Web server, Celery worker and beat on the embedded default (SQLite and a
# filesystem broker under var/). Plain HTTP on loopback, so cookies are not
# marked Secure. Ctrl-C stops all three.
# The embedded demo keeps its emails in the Outbox instead of sending them.
run: export EMAIL_BACKEND ?= playbooks.mail.StoreOnlyBackend
run: export CSP_PUBLIC_URL ?= http://127.0.0.1:$(PORT)
run: migrate
	$(BIN)/python manage.py seed_demo --if-empty
	$(BIN)/python manage.py demo_setup
	$(BIN)/python manage.py collectstatic --noinput --verbosity 0
	@echo
	@echo "  csplatform: http://127.0.0.1:$(PORT)/"
	@echo "  sign in as admin@demo.example (or csm@demo.example), password: $${CSP_DEMO_PASSWORD:-demo}"
	@echo "  Ctrl-C stops the web server, the worker and beat."
	@echo
	PATH="$(CURDIR)/$(BIN):$$PATH" CSP_SECURE_COOKIES=0 $(BIN)/python -c "$$HONCHO_WITH_LONGER_GRACE" \
		start -f Procfile -p $(PORT)

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

smoke: install
	$(BIN)/python -m pytest -m smoke $(PYTEST_ARGS)

# Property-based API fuzzing with schemathesis: 100 schema-valid and 100
# schema-invalid generated requests per operation (CSP_FUZZ_EXAMPLES to change).
.PHONY: fuzz
fuzz: install
	CSP_FUZZ_EXAMPLES=$${CSP_FUZZ_EXAMPLES:-100} $(BIN)/python -m pytest -m fuzz $(PYTEST_ARGS)

# Builds a large tenant in its own PostgreSQL database (emptied first; its name
# must contain "bench") and prints each figure beside a baseline measured in
# the same run. SCALE=tiny|small|full; results also in var/bench/results.json.
# BENCH_ARGS="--reuse --only pages" measures again on the last build.
SCALE ?= small
.PHONY: bench
bench: install
	DATABASE_URL=$${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/csplatform_bench} \
	REDIS_URL=$${REDIS_URL:-redis://127.0.0.1:6379/9} \
	$(BIN)/python manage.py bench --scale $(SCALE) $(BENCH_ARGS)

clean:
	rm -rf $(VENV) var

# Full-page screenshots of the demo tenant's dashboard pages into var/screenshots/
# (needs chromium and the demo data of `make run`).
.PHONY: screenshots
screenshots: install
	$(BIN)/python manage.py screenshots
