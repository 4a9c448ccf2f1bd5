"""The stock OD API 2.8 end to end through od_guard's compat layer: the tiny SSD
MobileNet V2 trains through the drop-in (`python -m od_guard.model_main_tf2`),
evaluates (COCO metrics and the eval images Pillow >= 10 broke) and exports
with the stock `exporter_main_v2` (through `python -m od_guard.odapi_compat`);
the SavedModel serves in a process with plain TensorFlow. The 8 zoo configs of
tests/data build the same models (variables, parameters) as on TF 2.15.

These run in both environments (the Makefile's MODERN_ODAPI_TESTS): TF 2.15 +
protobuf 3.20 (odapi), where only the tf-slim, Pillow and numpy shims apply,
and TF 2.20 + Keras 3 + protobuf 7 on Python 3.12 (modern), where all do. Each
run is a fresh interpreter with the environment's own TensorFlow; one training
run (module-scoped) serves the eval and export tests.
"""

from __future__ import annotations

import json
import math
import os
import pathlib
import subprocess
import sys
import textwrap

import pytest

from conftest import REPO
from conftest import ZOO_COPIES

pytestmark = pytest.mark.odapi

STEPS = 12
_CLEAN = ("OD_GUARD_COMPAT", "TF_USE_LEGACY_KERAS")


def _run(args: list[str], *, timeout: int = 900) -> subprocess.CompletedProcess:
  env = {k: v for k, v in os.environ.items() if k not in _CLEAN}
  env.update(PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="2")
  return subprocess.run(
    [sys.executable, *args], capture_output=True, text=True, timeout=timeout, env=env
  )


_WORLD = """
import sys
from od_guard.odapi import compat
compat.install()
from od_guard.testing import tiny_odapi
root = sys.argv[1]
record = tiny_odapi.write_synthetic_tfrecord(root + "/train.record", num_examples=4, image_size=64)
label_map = tiny_odapi.write_label_map(root + "/label_map.pbtxt", 3)
config = tiny_odapi.shrink_pipeline_config(
  tiny_odapi.load_pipeline_config(sys.argv[2]), image_size=64, num_classes=3, batch_size=2,
  num_steps=int(sys.argv[3]), train_record=record, label_map=label_map, fine_tune_checkpoint="")
config.eval_config.num_visualizations = 2
config.eval_config.num_examples = 4
tiny_odapi.write_pipeline_config(config, root + "/pipeline.config")
"""


def _losses(logdir: pathlib.Path) -> list[tuple[int, float]]:
  """(step, Loss/total_loss) of every training step, read by TensorBoard."""
  script = textwrap.dedent(f"""
      import json
      from tensorboard.backend.event_processing import event_multiplexer
      from tensorboard.util import tensor_util
      mux = event_multiplexer.EventMultiplexer(size_guidance={{"tensors": 0}})
      mux.AddRunsFromDirectory({str(logdir)!r})
      mux.Reload()
      print(json.dumps([
        (e.step, float(tensor_util.make_ndarray(e.tensor_proto)))
        for e in mux.Tensors("train", "Loss/total_loss")
      ]))
  """)
  r = _run(["-c", script])
  assert r.returncode == 0, r.stderr[-3000:]
  return [tuple(x) for x in json.loads(r.stdout.strip().splitlines()[-1])]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  """The tiny SSD trained STEPS steps by the drop-in; (root, result, model_dir)."""
  root = tmp_path_factory.mktemp("modern_odapi")
  config = ZOO_COPIES / "ssd_mobilenet_v2_320x320_coco17_tpu-8.config"
  r = _run(["-c", _WORLD, str(root), str(config), str(STEPS)])
  assert r.returncode == 0, r.stderr[-3000:]
  model_dir = root / "train"
  result = _run(
    [
      "-m",
      "od_guard.model_main_tf2",
      f"--pipeline_config_path={root / 'pipeline.config'}",
      f"--model_dir={model_dir}",
      f"--num_train_steps={STEPS}",
      "--num_steps_per_iteration=1",
      f"--checkpoint_every_n={STEPS}",
    ]
  )
  return root, result, model_dir


def test_tiny_ssd_trains_with_finite_falling_loss_through_the_drop_in(trained):
  _, r, model_dir = trained
  assert r.returncode == 0, r.stderr[-3000:]
  assert r.stdout.startswith("od_guard preflight: WARN")  # no fine-tune checkpoint: a warning
  assert "no_fine_tune_checkpoint" in r.stdout
  losses = _losses(model_dir)
  steps = [step for step, _ in losses]
  values = [value for _, value in losses]
  print(f"total loss per step: {losses}")
  assert steps == list(range(1, STEPS + 1))
  assert all(math.isfinite(v) for v in values)
  third = STEPS // 3
  assert sum(values[-third:]) / third < sum(values[:third]) / third, losses
  assert (model_dir / "ckpt-2.index").exists()  # ckpt-1 at step 0, ckpt-2 at step STEPS


def test_eval_reports_coco_metrics_and_draws_its_images(trained):
  root, r, model_dir = trained
  assert r.returncode == 0, r.stderr[-3000:]
  e = _run(
    [
      "-m",
      "od_guard.model_main_tf2",
      f"--pipeline_config_path={root / 'pipeline.config'}",
      f"--model_dir={model_dir}",
      f"--checkpoint_dir={model_dir}",
      "--eval_timeout=1",
    ]
  )
  assert e.returncode == 0, e.stderr[-3000:]
  assert "getsize" not in e.stderr
  assert "DetectionBoxes_Precision/mAP" in e.stderr
  script = textwrap.dedent(f"""
      import json
      from tensorboard.backend.event_processing import event_multiplexer
      mux = event_multiplexer.EventMultiplexer()
      mux.AddRunsFromDirectory({str(model_dir)!r})
      mux.Reload()
      print(json.dumps(sorted(mux.Runs()["eval"]["tensors"])))
  """)
  tags = _run(["-c", script])
  assert tags.returncode == 0, tags.stderr[-3000:]
  eval_tags = json.loads(tags.stdout.strip().splitlines()[-1])
  assert "DetectionBoxes_Precision/mAP" in eval_tags
  assert any(t.startswith("eval_side_by_side_") for t in eval_tags), eval_tags  # drawn


def test_stock_exporter_writes_a_saved_model_that_serves_in_plain_tensorflow(trained):
  root, r, model_dir = trained
  assert r.returncode == 0, r.stderr[-3000:]
  export_dir = root / "exported"
  x = _run(
    [
      "-m",
      "od_guard.odapi_compat",
      "object_detection.exporter_main_v2",
      "--input_type=image_tensor",
      f"--pipeline_config_path={root / 'pipeline.config'}",
      f"--trained_checkpoint_dir={model_dir}",
      f"--output_directory={export_dir}",
    ]
  )
  assert x.returncode == 0, x.stderr[-3000:]
  saved_model = export_dir / "saved_model"
  assert (saved_model / "saved_model.pb").exists()
  # Served by TensorFlow alone: no od_guard, no OD API imported, no compat layer.
  script = textwrap.dedent(f"""
      import json, sys
      import numpy as np
      import tensorflow as tf
      model = tf.saved_model.load({str(saved_model)!r})
      serve = model.signatures["serving_default"]
      image = np.random.default_rng(0).integers(0, 255, (1, 64, 64, 3), dtype=np.uint8)
      out = serve(input_tensor=tf.constant(image))
      print(json.dumps({{
        "keys": sorted(out),
        "boxes": out["detection_boxes"].shape.as_list(),
        "num": float(out["num_detections"][0]),
        "finite": bool(np.isfinite(out["detection_scores"].numpy()).all()),
        "foreign": sorted(m for m in sys.modules if m.split(".")[0] in ("od_guard", "object_detection")),
      }}))
  """)
  s = _run(["-c", script], timeout=300)
  assert s.returncode == 0, s.stderr[-3000:]
  served = json.loads(s.stdout.strip().splitlines()[-1])
  assert {"detection_boxes", "detection_classes", "detection_scores", "num_detections"} <= set(
    served["keys"]
  )
  assert served["boxes"][0] == 1 and served["boxes"][2] == 4
  assert served["num"] > 0 and served["finite"]
  assert served["foreign"] == []


def test_zoo_configs_build_the_same_models_as_on_tf_2_15():
  """The 8 zoo configs of tests/data, built by the OD API's model builder: the
  same variables (names and shapes), trainable variables and parameters as on
  TF 2.15 (tests/data/odapi_model_sizes.json, from the odapi environment)."""
  from support import zoo_models

  from od_guard.odapi import compat

  reference = json.loads(zoo_models.DUMP.read_text(encoding="utf-8"))
  if compat.stack().tensorflow == reference["tensorflow"]:
    pytest.skip(f"the reference was built on this TensorFlow ({reference['tensorflow']})")
  r = _run(["-c", zoo_models.BUILD_SCRIPT, str(ZOO_COPIES), json.dumps(zoo_models.SIZES)])
  assert r.returncode == 0, r.stderr[-3000:]
  built = json.loads(r.stdout.strip().splitlines()[-1])
  assert len(built["models"]) == 8
  assert built["models"] == reference["models"]


_ODAPI_PYTHON = REPO / ".venv" / "odapi" / "bin" / "python"

# Writes, with this environment's TensorFlow, the tiny SSD's detection
# checkpoint (model_main_tf2's layout) and a config fine-tuning from it.
_WRITE_CHECKPOINT = """
import sys
from od_guard.odapi import compat
compat.install()
from od_guard.testing import tiny_odapi
root, zoo = sys.argv[1], sys.argv[2]
record = tiny_odapi.write_synthetic_tfrecord(root + "/train.record", num_examples=4, image_size=64)
label_map = tiny_odapi.write_label_map(root + "/label_map.pbtxt", 3)
base = tiny_odapi.shrink_pipeline_config(
  tiny_odapi.load_pipeline_config(zoo), image_size=64, num_classes=3, train_record=record,
  label_map=label_map, fine_tune_checkpoint="")
prefix = tiny_odapi.save_detection_checkpoint(tiny_odapi.build_model(base), root + "/ckpt")
config = tiny_odapi.shrink_pipeline_config(
  base, image_size=64, num_classes=3, fine_tune_checkpoint=prefix,
  fine_tune_checkpoint_type="detection")
tiny_odapi.write_pipeline_config(config, root + "/pipeline.config")
print(prefix)
"""

# The fine-tune's restore in this environment: od_guard's predicted map, then
# the OD API's own restore (model_lib_v2's restore_from_objects) and which
# checkpoint values the model's variables then hold.
_RESTORE_MAP = """
import hashlib, json, sys
from od_guard.odapi import compat
compat.install()
import tensorflow as tf
from od_guard.odapi import preflight
from od_guard.testing import tiny_odapi
config_path, prefix = sys.argv[1], sys.argv[2]
report = preflight.check(config_path, checkpoint=prefix)
bound = sorted((b.path, b.key) for b in report.restore.restored)
model = tiny_odapi.build_model(tiny_odapi.load_pipeline_config(config_path))
roots = model.restore_from_objects(fine_tune_checkpoint_type="detection")
tf.train.Checkpoint(**roots).restore(prefix).expect_partial().assert_existing_objects_matched()
reader = tf.train.load_checkpoint(prefix)
digest = lambda a: hashlib.sha256(a.tobytes()).hexdigest()
held = {digest(v.numpy()) for v in model.variables}
print(json.dumps({
  "tensorflow": tf.__version__,
  "decision": report.verdict.decision,
  "variables": len(model.variables),
  "bound": bound,
  "values": {key: digest(reader.get_tensor(key)) for _, key in bound},
  "values_held": sum(digest(reader.get_tensor(key)) in held for _, key in bound),
}))
"""


def test_a_tf_2_15_checkpoint_fine_tunes_with_the_same_restore_map_and_values(tmp_path):
  """A detection checkpoint TF 2.15 wrote (the odapi environment), fine-tuned
  from in both environments: the same 300 of 324 variables bound to the same
  keys, and after the OD API's own restore the model holds each bound value."""
  from od_guard.odapi import compat

  if not _ODAPI_PYTHON.exists():
    pytest.skip(f"needs the odapi environment ({_ODAPI_PYTHON}) to write a TF 2.15 checkpoint")
  if compat.stack().tf_release < (2, 16):
    pytest.skip("this is the odapi environment: the comparison runs in the modern one")
  env = {k: v for k, v in os.environ.items() if k not in _CLEAN}
  env.update(PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="2")
  zoo = str(ZOO_COPIES / "ssd_mobilenet_v2_320x320_coco17_tpu-8.config")
  results = {}
  written = subprocess.run(
    [str(_ODAPI_PYTHON), "-c", _WRITE_CHECKPOINT, str(tmp_path), zoo],
    capture_output=True,
    text=True,
    timeout=600,
    env=env,
  )
  assert written.returncode == 0, written.stderr[-3000:]
  prefix = written.stdout.strip().splitlines()[-1]
  for name, python in (("tf2.15", str(_ODAPI_PYTHON)), ("here", sys.executable)):
    r = subprocess.run(
      [python, "-c", _RESTORE_MAP, str(tmp_path / "pipeline.config"), prefix],
      capture_output=True,
      text=True,
      timeout=600,
      env=env,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    results[name] = json.loads(r.stdout.strip().splitlines()[-1])
  old, new = results["tf2.15"], results["here"]
  assert old["tensorflow"].startswith("2.15") and new["tensorflow"] != old["tensorflow"]
  assert (
    (len(new["bound"]), new["variables"]) == (len(old["bound"]), old["variables"]) == (300, 324)
  )
  assert new["bound"] == old["bound"]
  assert new["values"] == old["values"]
  assert new["values_held"] == old["values_held"] == 300
  assert new["decision"] == old["decision"] == "pass"


if __name__ == "__main__":
  sys.exit(pytest.main([__file__, "-q", "-s"]))
