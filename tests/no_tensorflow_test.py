"""Reading checkpoints needs no TensorFlow, Keras or tf-keras.

Each case runs in a fresh interpreter whose PYTHONPATH starts with packages
named `tensorflow`, `keras` and `tf_keras` that raise on import (as a broken or
missing install does), and compares what od_guard says there with what it says
with the real packages importable. The checkpoints are written by TensorFlow.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import REPO

BROKEN = ("tensorflow", "keras", "tf_keras")
MARK = "OD_GUARD_TEST_IMPORTED"  # printed by a broken package before it raises


@pytest.fixture(scope="module")
def broken_frameworks(tmp_path_factory) -> str:
  directory = tmp_path_factory.mktemp("broken_frameworks")
  for name in BROKEN:
    (directory / name).mkdir()
    (directory / name / "__init__.py").write_text(
      f'import sys\nsys.stderr.write("{MARK} {name}\\n")\n'
      f'raise ImportError("{name} is broken on purpose")\n'
    )
  return str(directory)


def _python(*args: str, broken: str | None) -> subprocess.CompletedProcess:
  path = [broken, str(REPO)] if broken else [str(REPO)]
  return subprocess.run(
    [sys.executable, *args],
    capture_output=True,
    text=True,
    timeout=120,
    env=dict(os.environ, PYTHONPATH=os.pathsep.join(path), TF_CPP_MIN_LOG_LEVEL="3"),
  )


def _same_without_frameworks(broken: str, *argv: str, volatile: tuple[str, ...] = ()) -> int:
  """Runs `python -m od_guard ARGV` with and without the frameworks; asserts the
  same exit code and output, and that no framework import was attempted.
  Returns the exit code."""
  without = _python("-m", "od_guard", *argv, broken=broken)
  with_them = _python("-m", "od_guard", *argv, broken=None)
  assert MARK not in without.stderr, without.stderr
  assert "Traceback" not in without.stderr, without.stderr
  out = [without.stdout, with_them.stdout]
  if volatile:
    out = [json.dumps({k: v for k, v in json.loads(o).items() if k not in volatile}) for o in out]
  assert (without.returncode, out[0]) == (with_them.returncode, out[1])
  return without.returncode


def test_the_broken_packages_are_what_python_finds(broken_frameworks):
  for name in BROKEN:
    r = _python("-c", f"import {name}", broken=broken_frameworks)
    assert r.returncode == 1
    assert r.stderr.strip().splitlines()[-1] == f"ImportError: {name} is broken on purpose"


_IMPORT_THE_LAYER = """
import importlib, json, pkgutil, sys
import od_guard.checkpoint as layer

names = sorted(m.name for m in pkgutil.iter_modules(layer.__path__))
for name in names:
  importlib.import_module("od_guard.checkpoint." + name)
frameworks = sorted(m for m in sys.modules if m.split(".")[0] in {broken})
print(json.dumps({{"modules": names, "frameworks": frameworks}}))
"""


def test_the_checkpoint_layer_and_all_its_modules_import(broken_frameworks):
  r = _python("-c", _IMPORT_THE_LAYER.format(broken=BROKEN), broken=broken_frameworks)
  assert r.returncode == 0, r.stderr
  assert MARK not in r.stderr
  got = json.loads(r.stdout)
  assert {"inventory", "tensor_bundle", "object_graph", "keras_files", "paths"} <= set(
    got["modules"]
  )
  assert got["frameworks"] == []


@pytest.fixture(scope="module")
def other_checkpoint(tmp_path_factory, tf) -> str:
  """A second TF checkpoint, with names and shapes of its own."""
  root = tf.Module()
  root.head = tf.Variable(tf.zeros([4, 2]))
  return tf.train.Checkpoint(model=root).save(str(tmp_path_factory.mktemp("other") / "ckpt"))


@pytest.mark.parametrize(
  "argv,code",
  [
    (("inspect", "{ckpt}"), 0),
    (("inspect", "{ckpt}", "--json", "--variables"), 0),
    (("inspect", "{ckpt}.index", "--depth", "1"), 0),
    (("inspect", "{h5}"), 0),
    (("diff", "{ckpt}", "{ckpt}"), 0),
    (("diff", "{ckpt}", "{other}", "--json"), 1),
    (("lint", "{ckpt}", "--preset", "odapi"), 1),
    (("lint", "{other}.index", "{other}.data-00000-of-00001", "--preset", "keras", "--json"), 0),
  ],
  ids=lambda v: " ".join(v) if isinstance(v, tuple) else None,
)
def test_metadata_commands_work(
  broken_frameworks, keras_tf_checkpoint, other_checkpoint, keras2_h5, argv, code
):
  paths = {"ckpt": keras_tf_checkpoint, "other": other_checkpoint, "h5": keras2_h5}
  assert _same_without_frameworks(broken_frameworks, *(a.format(**paths) for a in argv)) == code


@pytest.mark.odapi
def test_static_check_works(broken_frameworks, odapi_world):
  """`check --static` reads the config with the OD API's protos (protobuf only)."""
  config = odapi_world.write_config("no_tensorflow")
  argv = ("check", "--static", "--json", "--pipeline_config_path", config)
  assert _same_without_frameworks(broken_frameworks, *argv, volatile=("timings",)) == 0
  renamed = ("--checkpoint", odapi_world.checkpoints["renamed"])
  assert _same_without_frameworks(broken_frameworks, *argv, *renamed, volatile=("timings",)) == 1


if __name__ == "__main__":
  sys.exit(pytest.main([__file__, "-q"]))


def test_verify_reads_every_value_without_frameworks(broken_frameworks, keras_tf_checkpoint):
  argv = ("verify", keras_tf_checkpoint, "--json", "--tensors")
  # The wall time (also in the INFO finding's title) differs between the runs.
  assert _same_without_frameworks(broken_frameworks, *argv, volatile=("seconds", "findings")) == 0
