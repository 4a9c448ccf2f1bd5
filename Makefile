# od_guard: `make demo` and `make test` set everything up on a fresh machine.
PYTHON ?= python3.11
VENV ?= .venv
ODAPI := $(VENV)/odapi/bin/python
MODERN := $(VENV)/modern/bin/python
LINTBIN := $(VENV)/lint/bin
BUILDIFIER_VERSION := 8.2.1
BUILDIFIER := .tools/node_modules/.bin/buildifier
PYTEST_FLAGS ?= -q -p no:cacheprovider

.PHONY: all envs env-odapi env-modern env-lint tools lint format test test-odapi test-modern demo keras-example bench clean

all: test

env-odapi:
	@.ci/make_env.sh odapi $(VENV) $(PYTHON)

env-modern:
	@.ci/make_env.sh modern $(VENV) $(PYTHON)

env-lint:
	@.ci/make_env.sh lint $(VENV) $(PYTHON)

envs: env-odapi env-modern env-lint

$(BUILDIFIER):
	npm install --silent --no-save --no-audit --no-fund --prefix .tools @bazel/buildifier@$(BUILDIFIER_VERSION)

tools: $(BUILDIFIER)

# buildifier on BUILD; ruff (lint, format); import-linter (the layers in .importlinter).
lint: tools env-lint
	$(BUILDIFIER) --mode=check --lint=warn BUILD
	$(LINTBIN)/ruff check .
	$(LINTBIN)/ruff format --check .
	$(LINTBIN)/lint-imports --no-cache

format: env-lint
	$(LINTBIN)/ruff check --fix .
	$(LINTBIN)/ruff format .

# Everything runs in odapi (TF 2.15, Keras 2, OD API); everything that does not
# need the OD API runs again in modern (TF 2.20, Keras 3, tf-keras).
test-odapi: env-odapi
	$(ODAPI) -m pytest $(PYTEST_FLAGS) tests

test-modern: env-modern
	$(MODERN) -m pytest $(PYTEST_FLAGS) -m "not odapi" tests

test: lint test-modern test-odapi

demo: env-odapi
	$(ODAPI) examples/demo.py --out demo_out

keras-example: env-modern
	$(MODERN) examples/keras_finetune.py --out keras_demo_out

bench: env-odapi
	$(ODAPI) benchmarks/inventory.py
	$(ODAPI) benchmarks/time_to_verdict.py
	$(ODAPI) benchmarks/save_overhead.py
	$(ODAPI) benchmarks/remap.py

clean:
	rm -rf $(VENV) .tools demo_out keras_demo_out bench_out
