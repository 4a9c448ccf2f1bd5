"""The examples run as the README says."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from conftest import REPO
from conftest import keras3_available


def _run(script: str, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
  return subprocess.run(
    [sys.executable, str(REPO / "examples" / script), *args],
    capture_output=True,
    text=True,
    timeout=timeout,
    env=dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="3"),
  )


def test_keras_finetune_example(tmp_path):
  if not keras3_available():
    pytest.skip("the Keras example is written for Keras 3 (the modern environment)")
  r = _run("keras_finetune.py", "--out", str(tmp_path))
  assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
  assert "-> stopped before the first batch; retrying with exclude=['model/head']" in r.stdout
  assert (
    "proposed rename map: model/backbone/ -> model/encoder/, model/head/ -> model/classifier/"
  ) in r.stdout


@pytest.mark.odapi
def test_demo(tmp_path):
  r = _run("demo.py", "--out", str(tmp_path), timeout=900)
  assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
  assert "The good run trained; each mistake stopped before step one." in r.stdout
  assert "tensorboard --logdir" in r.stdout
  assert "open http://localhost:6006/#od_guard" in r.stdout
  for code in ("feature_extractor_mismatch", "renamed_scopes", "tf1_checkpoint"):
    assert f"({code})" in r.stdout
  assert f"tensorboard --logdir {tmp_path / 'runs'}" in r.stdout


if __name__ == "__main__":
  sys.exit(pytest.main([__file__, "-q"]))
