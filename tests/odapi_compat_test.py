"""`od_guard.odapi.compat.apply()`: tf-slim's moved functions work after it, in
this process only; no installed file is edited; the stock OD API trains."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import pathlib
import subprocess
import sys

import pytest

from conftest import REPO
from conftest import ZOO_COPIES

pytestmark = pytest.mark.odapi

# tf-slim functions that call control_flow_ops.case / .cond, each run in a fresh
# interpreter before and after apply(): the Image handler decodes a PNG through
# control_flow_ops.case, BackupHandler falls back to its second handler through
# control_flow_ops.cond (the OD API's TfExampleDecoder uses both).
_SLIM_CALLS = """
import json
import sys

import numpy as np
import tensorflow as tf
from tf_slim.data import tfexample_decoder

image = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
png = tf.io.encode_png(image)


def case():
  handler = tfexample_decoder.Image(channels=3)
  item = handler.tensors_to_item({"image/encoded": png, "image/format": tf.constant("png")})
  return item.numpy().tolist() == image.tolist()


def cond():
  handler = tfexample_decoder.BackupHandler(
    tfexample_decoder.Tensor("primary"), tfexample_decoder.Tensor("backup")
  )
  item = handler.tensors_to_item(
    {"primary": tf.zeros([0]), "backup": tf.constant([1.0, 2.0])}
  )
  return item.numpy().tolist() == [1.0, 2.0]


def run_all():
  out = {}
  for name, fn in (("case", case), ("cond", cond)):
    try:
      out[name] = fn()
    except AttributeError as e:
      out[name] = f"AttributeError: {e}"
  return out


result = {"before": run_all()}
from od_guard.odapi import compat

result["aliased"] = compat.apply()
result["after"] = run_all()
result["aliased_again"] = compat.apply()
from tensorflow.python.ops import cond as cond_module
from tensorflow.python.ops import control_flow_case
from tensorflow.python.ops import control_flow_ops

result["aliases"] = [
  getattr(control_flow_ops, "case", None) is control_flow_case.case,
  getattr(control_flow_ops, "cond", None) is cond_module.cond,
]
print(json.dumps(result))
"""


def _package_dir(name: str) -> pathlib.Path:
  spec = importlib.util.find_spec(name)  # locates without importing
  return pathlib.Path(spec.origin).parent


def _installed_files_digest() -> dict[str, str]:
  """sha256 of every file of tf-slim and the OD API, and of TF's control_flow_ops.py."""
  files = [p for d in ("tf_slim", "object_detection") for p in _package_dir(d).rglob("*.py")]
  files.append(_package_dir("tensorflow") / "python" / "ops" / "control_flow_ops.py")
  return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(files)}


def _run(args: list[str], timeout: int = 300) -> subprocess.CompletedProcess:
  return subprocess.run(
    [sys.executable, *args],
    capture_output=True,
    text=True,
    timeout=timeout,
    env=dict(
      os.environ,
      PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
      TF_CPP_MIN_LOG_LEVEL="2",
    ),
  )


def test_apply_makes_tf_slims_case_and_cond_calls_work_in_process_only():
  before = _installed_files_digest()
  r = _run(["-c", _SLIM_CALLS])
  assert r.returncode == 0, r.stderr[-3000:]
  result = json.loads(r.stdout.strip().splitlines()[-1])
  module = "module 'tensorflow.python.ops.control_flow_ops'"
  assert result == {
    "before": {
      "case": f"AttributeError: {module} has no attribute 'case'",
      "cond": f"AttributeError: {module} has no attribute 'cond'",
    },
    "aliased": ["control_flow_ops.case", "control_flow_ops.cond"],
    "after": {"case": True, "cond": True},
    "aliased_again": [],  # idempotent
    "aliases": [True, True],
  }
  # A fresh interpreter is back to TF's own module: nothing persisted.
  assert _installed_files_digest() == before
  fresh = _run(
    ["-c", "from tensorflow.python.ops import control_flow_ops as c; print(hasattr(c, 'case'))"]
  )
  assert fresh.stdout.strip().splitlines()[-1] == "False", fresh.stderr[-2000:]


def test_stock_model_main_tf2_trains_a_tiny_config(tmp_path):
  from od_guard.testing import tiny_odapi

  record = tiny_odapi.write_synthetic_tfrecord(
    str(tmp_path / "train.record"), num_examples=4, image_size=64
  )
  label_map = tiny_odapi.write_label_map(str(tmp_path / "label_map.pbtxt"), 3)
  config = tiny_odapi.shrink_pipeline_config(
    tiny_odapi.load_pipeline_config(
      str(ZOO_COPIES / "ssd_mobilenet_v2_320x320_coco17_tpu-8.config")
    ),
    image_size=64,
    num_classes=3,
    batch_size=2,
    num_steps=1,
    train_record=record,
    label_map=label_map,
    fine_tune_checkpoint="",
  )
  pipeline = tiny_odapi.write_pipeline_config(config, str(tmp_path / "pipeline.config"))
  model_dir = tmp_path / "train"
  before = _installed_files_digest()
  r = _run(
    [
      "-m",
      "od_guard.odapi_compat",
      "object_detection.model_main_tf2",
      f"--pipeline_config_path={pipeline}",
      f"--model_dir={model_dir}",
      "--checkpoint_every_n=1000",
      "--alsologtostderr",
    ],
    timeout=600,
  )
  assert r.returncode == 0, r.stderr[-3000:]
  assert "control_flow_ops' has no attribute" not in r.stderr
  assert "Step 100 per-step time" in r.stderr
  assert (model_dir / "checkpoint").exists()
  assert _installed_files_digest() == before


if __name__ == "__main__":
  sys.exit(pytest.main([__file__, "-q"]))
