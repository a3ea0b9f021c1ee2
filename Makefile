# The two commands: `make demo` (try the relay) and `make test` (lint + tests).
VENV ?= .venv
PYTHON ?= python3
BIN := $(CURDIR)/$(VENV)/bin

.PHONY: test unit demo token tiles bench load audit settings-table lock venv clean

venv: $(VENV)/.installed

# Every package, transitive ones too, pinned with its hashes (make lock).
$(VENV)/.installed: code/requirements.txt code/requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check \
		--require-hashes -r code/requirements-dev.txt
	touch $@

test: venv
	cd code && $(BIN)/flake8 .
	cd code && $(BIN)/mypy
	cd code && $(BIN)/python -m pytest --cov --cov-fail-under=90

# The inner loop: the tests that start no relay process and no Redis.
unit: venv
	cd code && $(BIN)/python -m pytest -q -m "not e2e and not redis"

demo: venv
	cd code && $(BIN)/python -m devtools.demo $(DEMO_ARGS)

# A token the running demo accepts: make token CLAIMS='MIN_SEVERITY=20'
token: venv
	@cd code && $(BIN)/python -m devtools.demo token $(CLAIMS)

# The five dashboard tiles of the demo data, drawn: code/.demo/tiles.html
# (and tiles.png with Chromium).
tiles: venv
	cd code && $(BIN)/python -m devtools.tiles_page $(TILES_ARGS)

bench: venv
	cd code && $(BIN)/python -m devtools.bench $(BENCH_ARGS)

load: venv
	cd code && $(BIN)/python -m devtools.loadcheck

# The table of environment variables of docs/operating.md, from
# code/relay/settings.py.
settings-table: venv
	@cd code && $(BIN)/python -c "from relay.settings import table; print(table())"

# Compile the lock files (every transitive package and its hashes) from
# code/requirements.in and code/requirements-dev.in.
LOCK := --quiet --generate-hashes --allow-unsafe --no-strip-extras \
	--no-emit-index-url --no-emit-find-links --no-emit-trusted-host
lock: venv
	cd code && $(BIN)/pip-compile $(LOCK) -o requirements.txt requirements.in
	cd code && $(BIN)/pip-compile $(LOCK) -o requirements-dev.txt \
		requirements-dev.in

audit: venv
	$(BIN)/bandit -q -r code/relay

clean:
	rm -rf $(VENV) code/.coverage code/.pytest_cache
