# od_guard: `make demo` and `make test` set everything up on a fresh machine.
PYTHON ?= python3.11
VENV ?= .venv
ODAPI := $(VENV)/odapi/bin/python
MODERN := $(VENV)/modern/bin/python
BUILDIFIER_VERSION := 8.2.1
BUILDIFIER := .tools/node_modules/.bin/buildifier
PYTEST_FLAGS ?= -q -p no:cacheprovider

.PHONY: all envs env-odapi env-modern tools lint test test-odapi test-modern demo keras-example bench clean

all: test

env-odapi:
	@.ci/make_env.sh odapi $(VENV) $(PYTHON)

env-modern:
	@.ci/make_env.sh modern $(VENV) $(PYTHON)

envs: env-odapi env-modern

$(BUILDIFIER):
	npm install --silent --no-save --no-audit --no-fund --prefix .tools @bazel/buildifier@$(BUILDIFIER_VERSION)

tools: $(BUILDIFIER)

lint: tools
	$(BUILDIFIER) --mode=check --lint=warn BUILD

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
