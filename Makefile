# The two set-up commands of the README: `make demo` and `make test`. Each creates .venv and installs what it needs.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

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
browser:
	@command -v chromium >/dev/null 2>&1 || [ "$$(id -u)" != 0 ] || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null)

bench: $(STAMP)
	$(PY) bench/run.py

lint: $(STAMP)
	$(VENV)/bin/ruff check plugin tests bench
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) build dist .pytest_cache .hypothesis
