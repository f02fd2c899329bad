# The two commands everyone types: `make run` and `make test`.
# Both create the virtual environment on first use, so a fresh machine needs only
# Python 3.11+ and make.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test lint format messages clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

messages: $(STAMP)
	$(BIN)/pybabel compile --domain=django --directory=locale --use-fuzzy --statistics 2>&1 | tail -n 2

run: messages
	mkdir -p var
	$(BIN)/python manage.py migrate --no-input
	$(BIN)/python manage.py seed_demo
	$(BIN)/python manage.py seed_demo_b2b
	$(BIN)/python manage.py seed_demo_plans
	$(BIN)/python manage.py seed_demo_points
	$(BIN)/python manage.py seed_demo_segments
	$(BIN)/python manage.py check_member_summaries --rebuild
	@echo
	@echo "  Admin (operators):  http://$(HOST):$(PORT)/admin/   operator / operator-demo   (superuser: admin / admin-demo)"
	@echo "  Demo member login:  member / member-demo   (王小明, 全館 VIP 銀卡)"
	@echo "  The site, a Celery worker and beat run together (embedded broker under var/broker); Ctrl-C stops all three."
	@echo
	CELERY_BROKER_URL=filesystem:// RUN_ADDR=$(HOST):$(PORT) $(BIN)/honcho -f Procfile.dev start

test: messages
	$(BIN)/pytest $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) db.sqlite3 var
