# od_guard: `make demo` and `make test` set everything up on a fresh machine.
PYTHON ?= python3.11
# The modern environment follows the users (Colab): Python 3.12. A `python3.12`
# that does not run (a pyenv shim without that version selected) is looked for
# under ~/.pyenv/versions, /usr/local/bin and /usr/bin (.ci/make_env.sh).
MODERN_PYTHON ?= python3.12
VENV ?= .venv
ODAPI := $(VENV)/odapi/bin/python
MODERN := $(VENV)/modern/bin/python
PLAIN := $(VENV)/plain/bin/python
LINTBIN := $(VENV)/lint/bin
DOCSBIN := $(VENV)/docs/bin
BUILDIFIER_VERSION := 8.2.1
BUILDIFIER := .tools/node_modules/.bin/buildifier
PYTEST_FLAGS ?= -q -rs -p no:cacheprovider
# Test files run in parallel, a file per worker (pytest-xdist): most of the
# suite waits on subprocesses that import TensorFlow. XDIST= runs serially.
XDIST ?= -n 2 --dist loadfile
# od_guard's bytecode, as an installed package has it: without it, every
# od-guard subprocess a test starts compiles the sources first where
# PYTHONDONTWRITEBYTECODE is set (this machine sets it).
BYTECODE = -m compileall -q od_guard
# TF-free tests that exercise the same code whatever else is installed, and take
# a minute each (the hostile corpus, property tests, SIGKILLs, object storage
# servers): they run in the plain environment only.
PLAIN_ONLY := tests/hostile_corpus_test.py tests/reader_property_test.py \
    tests/config_property_test.py tests/remap_kill_test.py tests/remote_test.py tests/remote_faults_test.py
# Test files that import without TensorFlow (the plain environment has none):
# every file that marks tests `plain` or `installs`, found rather than listed.
PLAIN_TESTS := $(sort $(shell grep -l -e 'mark\.plain' -e 'mark\.installs' tests/*_test.py) \
    $(PLAIN_ONLY))
NOT_PLAIN_ONLY := $(addprefix --ignore=,$(PLAIN_ONLY))

.PHONY: all envs env-odapi env-modern env-lint env-plain env-docs tools lint format docs test test-odapi test-modern test-plain demo keras-example bench fuzz clean

all: test

env-odapi:
	@.ci/make_env.sh odapi $(VENV) $(PYTHON)

env-modern:
	@.ci/make_env.sh modern $(VENV) $(MODERN_PYTHON)

env-lint:
	@.ci/make_env.sh lint $(VENV) $(PYTHON)

# What `pip install .` brings (no TensorFlow, no OD API) and the packaging tools:
# built in well under a minute (constraints/plain.txt).
env-plain:
	@.ci/make_env.sh plain $(VENV) $(PYTHON)

# MkDocs, mkdocs-material, mkdocstrings and od_guard without TensorFlow (constraints/docs.txt).
env-docs:
	@.ci/make_env.sh docs $(VENV) $(PYTHON)

envs: env-odapi env-modern env-lint env-plain env-docs

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

# Everything but the packaging tests runs in odapi (TF 2.15, Keras 2, OD API);
# everything that does not need the OD API runs again in modern (TF 2.20, Keras 3,
# tf-keras).
test-odapi: env-odapi
	$(ODAPI) $(BYTECODE)
	$(ODAPI) -m pytest $(PYTEST_FLAGS) $(XDIST) -m "not installs" $(NOT_PLAIN_ONLY) tests

# The OD API runs in modern too (Python 3.12, TF 2.20, Keras 3 + tf-keras, protobuf 7),
# through od_guard's compat layer. The whole OD API suite again would add its ~9 min
# on 2 cores, so only these files run in both environments: the compat layer's tests
# (one per shim, the protos against protobuf 3.20's, the refusal), the tiny SSD's
# training, eval and export through the drop-in and the stock OD API. Their second run
# sets OD_GUARD_COMPAT=auto, which makes tests/conftest.py install the layer in the test
# process before TensorFlow is imported; the first run must see tf.keras as Keras 3.
MODERN_ODAPI_TESTS := tests/compat_test.py tests/modern_odapi_test.py tests/odapi_compat_test.py

test-modern: env-modern
	$(MODERN) $(BYTECODE)
	$(MODERN) -m pytest $(PYTEST_FLAGS) $(XDIST) -m "not odapi and not installs" $(NOT_PLAIN_ONLY) tests
	OD_GUARD_COMPAT=auto $(MODERN) -m pytest $(PYTEST_FLAGS) $(XDIST) -m "odapi and not installs" \
	    $(MODERN_ODAPI_TESTS)

# The plain environment runs what applies without TensorFlow (marker `plain`) and
# the packaging tests (marker `installs`: the wheel, a protobuf 3.20 + OD API
# venv, pre-commit), which build their own virtual environments in tmp dirs.
test-plain: env-plain
	$(PLAIN) $(BYTECODE)
	$(PLAIN) -m pytest $(PYTEST_FLAGS) $(XDIST) -m "plain or installs" $(PLAIN_TESTS)

# The documentation site (mkdocs.yml, docs/) into site/, with --strict: a broken link or
# anchor, an API object that moved, or a generated page (the CLI
# and findings references, built from the code) that no longer builds fails it. Then every
# link of README.md must reach a file and a heading. (mkdocs-material 9.8 prints a banner
# about MkDocs 2 unless told not to.)
docs: env-docs
	DISABLE_MKDOCS_2_WARNING=true NO_MKDOCS_2_WARNING=1 $(DOCSBIN)/mkdocs build --strict
	$(DOCSBIN)/python docs/_gen/check_readme_links.py

test: lint docs test-plain test-modern test-odapi

demo: env-odapi
	$(ODAPI) examples/demo.py --out demo_out

keras-example: env-modern
	$(MODERN) examples/keras_finetune.py --out keras_demo_out

bench: env-odapi env-modern env-plain
	$(ODAPI) benchmarks/inventory.py
	$(ODAPI) benchmarks/time_to_verdict.py
	$(ODAPI) benchmarks/save_overhead.py
	$(ODAPI) benchmarks/remap.py
	$(ODAPI) benchmarks/dashboard.py
	$(ODAPI) benchmarks/verify.py
	$(ODAPI) benchmarks/compat.py
	$(MODERN) benchmarks/compat.py
	$(PLAIN) benchmarks/remote.py
	$(PLAIN) benchmarks/faults.py

# Structure-aware mutations of every reader (outside CI: several minutes).
fuzz: env-plain
	$(PLAIN) benchmarks/fuzz.py

clean:
	rm -rf $(VENV) .tools demo_out keras_demo_out bench_out site
