# shoal — two commands on a fresh Debian machine, as root: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DEB_PACKAGES := runc conmon nftables iproute2 mosquitto busybox-static docker-registry skopeo wrk wabt prometheus \
	containernetworking-plugins jq procps psmisc ca-certificates podman
DEB_COMMANDS := runc conmon nft ip mosquitto busybox docker-registry skopeo wrk jq wat2wasm prometheus promtool

.PHONY: install deps venv lint test unit integration e2e demo demo-down bench clean

install: deps venv

deps: .deps.stamp
.deps.stamp: Makefile
	@missing=$$(for p in $(DEB_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages: $$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi
	@$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || { apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv python3-dev gcc >/dev/null; }
	@for c in $(DEB_COMMANDS); do command -v $$c >/dev/null || { echo "error: $$c is missing after install" >&2; exit 1; }; done
	@touch $@

venv: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[dev]'
	@touch $@

lint: install
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

unit: install
	$(VENV)/bin/pytest tests/unit

integration: install
	$(VENV)/bin/pytest tests/integration

e2e: install
	$(VENV)/bin/pytest tests/e2e

test: lint
	$(VENV)/bin/pytest tests/unit tests/integration tests/e2e

demo: install
	@bash examples/demo.sh up

demo-down:
	@bash examples/demo.sh down

bench: install
	@mkdir -p bench-results
	@for b in benchmarks/*.py; do \
	  name=$$(basename $$b .py); echo "== $$name"; \
	  $(PY) $$b --json bench-results/$$name.json || exit 1; \
	done

clean:
	rm -rf $(VENV) .deps.stamp bench-results
