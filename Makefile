# The two set-up commands of the README: `make demo` and `make test`. Each creates .venv and installs what it needs.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
AXE := tests/js/node_modules/axe-core/axe.min.js

.PHONY: demo demo-temporal test bench lint clean browser

$(STAMP): pyproject.toml
	rm -f $(VENV)/.installed-*
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev,temporal]'
	touch $@

demo: $(STAMP)
	$(PY) -m httptask.cli.demo

# A Temporal dev server with its web UI, a worker, and the refund fan-out run on them (README: "On Temporal").
demo-temporal: $(STAMP)
	$(PY) -m httptask.cli.demo_temporal

# The suite runs in a network namespace whose only interface is loopback (as root: unshare -n; otherwise in a
# user namespace), so no test can send a packet off this machine, whatever event loop or client it uses.
ISOLATE := $(shell if unshare -n true 2>/dev/null; then echo "unshare -n"; elif unshare -rn true 2>/dev/null; then echo "unshare -rn"; fi)

test: $(STAMP) browser
ifeq ($(ISOLATE),)
	@echo "warning: no loopback-only network namespace here (unshare refused); only the tests' socket tripwire guards" >&2
	$(PY) -m pytest $(PYTEST_ARGS)
else
	HTTPTASK_NETNS=1 $(ISOLATE) sh -c 'ip link set lo up && exec "$$0" -m pytest "$$@"' $(PY) $(PYTEST_ARGS)
endif

# The browser tests drive Debian's Chromium; without root and without Chromium they skip, saying why.
browser: $(AXE)
	@command -v chromium >/dev/null 2>&1 || [ "$$(id -u)" != 0 ] || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null)

# axe-core, for the editor's accessibility check, from npm into tests/js/node_modules (pinned by its lock file);
# the test serves it to the page from there. Without npm (and without root to install it) that check skips.
$(AXE): tests/js/package-lock.json
	@command -v npm >/dev/null 2>&1 || [ "$$(id -u)" != 0 ] || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm >/dev/null)
	@if command -v npm >/dev/null 2>&1; then \
		cd tests/js && npm ci --no-audit --no-fund --silent && touch node_modules/axe-core/axe.min.js; \
	else echo "warning: npm is absent, so the accessibility check will skip" >&2; fi

bench: $(STAMP)
	$(PY) bench/run.py

lint: $(STAMP)
	$(VENV)/bin/ruff check plugin tests bench
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) build dist .pytest_cache .hypothesis
