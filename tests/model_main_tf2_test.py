"""End to end: `python -m od_guard.model_main_tf2` on a tiny SSD MobileNet V2
with synthetic TFRecords; event files read back with TensorBoard's own reader."""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
import textwrap

from absl import flags
import pytest

from conftest import REPO

pytestmark = pytest.mark.odapi


def _train(odapi_world, tmp_path, name: str, *flags: str):
  """Runs the drop-in on the tiny world's config `name`; returns (result, model_dir)."""
  model_dir = tmp_path / "train"
  config = odapi_world.write_config(name)
  return _run(f"--pipeline_config_path={config}", f"--model_dir={model_dir}", *flags), model_dir


def _python(script: str) -> subprocess.CompletedProcess:
  """Runs a Python script in a fresh process with od_guard from this checkout; it must exit 0."""
  r = subprocess.run(
    [sys.executable, "-c", script],
    capture_output=True,
    text=True,
    timeout=600,
    env=dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="2"),
  )
  assert r.returncode == 0, r.stderr[-3000:]
  return r


def _run(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
  return subprocess.run(
    [sys.executable, "-m", "od_guard.model_main_tf2", *args],
    capture_output=True,
    text=True,
    timeout=timeout,
    env=dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="2"),
  )


def _checkpoints(model_dir) -> list[str]:
  """Checkpoints a training run left to resume from (quarantined ones excluded)."""
  found = glob.glob(os.path.join(model_dir, "ckpt-*.index")) + glob.glob(
    os.path.join(model_dir, "checkpoint")
  )
  return sorted(p for p in found if ".quarantined" not in p)


def _event_tags(logdir: str) -> set[tuple[str, str]]:
  """(run, tag) pairs of the event files under logdir, read by TensorBoard."""
  from tensorboard.backend.event_processing import event_multiplexer

  mux = event_multiplexer.EventMultiplexer()
  mux.AddRunsFromDirectory(logdir)
  mux.Reload()
  return {(run, tag) for run, kinds in mux.Runs().items() for tag in kinds["tensors"]}


def _event_value(logdir: str, run: str, tag: str):
  from tensorboard.backend.event_processing import event_multiplexer
  from tensorboard.util import tensor_util

  mux = event_multiplexer.EventMultiplexer()
  mux.AddRunsFromDirectory(logdir)
  mux.Reload()
  (event,) = mux.Tensors(run, tag)
  return event.step, tensor_util.make_ndarray(event.tensor_proto)


def test_good_fine_tune_trains_and_logs_the_report(odapi_world, tmp_path):
  r, model_dir = _train(
    odapi_world,
    tmp_path,
    "e2e_good",
    "--num_train_steps=2",
    "--num_steps_per_iteration=1",
    "--checkpoint_every_n=1",
  )
  assert r.returncode == 0, r.stderr[-3000:]
  assert r.stdout.startswith("od_guard preflight: PASS")
  assert _checkpoints(model_dir)  # it trained and saved
  tags = _event_tags(str(model_dir))
  expected = {
    ("train", t)
    for t in (
      "od_guard/verdict",
      "od_guard/coverage/backbone",
      "od_guard/coverage/neck",
      "od_guard/coverage/box_head",
      "od_guard/coverage/class_head",
      "od_guard/coverage/total",
      "od_guard/count/restored",
      "od_guard/count/missing",
      "od_guard/count/errors",
      "od_guard/report",
    )
  }
  assert expected <= tags
  assert ("train", "Loss/total_loss") in tags  # and training itself logged
  step, value = _event_value(str(model_dir), "train", "od_guard/coverage/backbone")
  assert (step, float(value)) == (0, 1.0)
  _, text = _event_value(str(model_dir), "train", "od_guard/report")
  assert b"od_guard preflight: **PASS**" in text.item()
  report = json.loads((model_dir / "od_guard" / "report.json").read_text())
  assert report["verdict"]["decision"] == "pass"
  assert report["strategy"] == "MirroredStrategy (1 replica)"


def test_good_fine_tune_builds_the_model_once(odapi_world, tmp_path):
  """The preflight's model is the one train_loop trains: the OD API's real
  builder (wrapped only to count its calls) runs once in a good fine-tune."""
  script = textwrap.dedent(f"""
      import json
      from absl import flags
      from od_guard.odapi import compat
      compat.apply()
      from object_detection import model_lib, model_lib_v2
      from object_detection.builders import model_builder
      calls = []
      real = model_builder.build
      def counted(*args, **kwargs):
        model = real(*args, **kwargs)
        calls.append(id(model))
        return model
      model_builder.build = counted
      model_lib.MODEL_BUILD_UTIL_MAP["detection_model_fn_base"] = counted
      trained = []
      load = model_lib_v2.load_fine_tune_checkpoint
      def seen(model, *args, **kwargs):
        trained.append(id(model))
        return load(model, *args, **kwargs)
      model_lib_v2.load_fine_tune_checkpoint = seen
      from od_guard.odapi import model_main_tf2
      model_main_tf2.define_flags()
      flags.FLAGS([
          "prog",
          "--pipeline_config_path={odapi_world.write_config("build_once")}",
          "--model_dir={tmp_path / "train"}",
          "--num_train_steps=1",
          "--num_steps_per_iteration=1",
      ])
      code = model_main_tf2.run(flags.FLAGS)
      print(json.dumps({{
          "code": code,
          "builds": len(calls),
          "trained_the_built_one": trained == calls,
          "builder_restored": model_lib.MODEL_BUILD_UTIL_MAP["detection_model_fn_base"] is counted,
      }}))
  """)
  r = _python(script)
  assert json.loads(r.stdout.strip().splitlines()[-1]) == {
    "code": 0,
    "builds": 1,
    "trained_the_built_one": True,
    "builder_restored": True,
  }


@pytest.mark.parametrize(
  "scenario,code",
  [
    ("wrong_backbone", "feature_extractor_mismatch"),
    ("renamed", "renamed_scopes"),
    ("tf1", "tf1_checkpoint"),
  ],
)
def test_classic_failures_stop_before_step_one(
  odapi_world, tf1_checkpoint, tmp_path, scenario, code
):
  config = {
    "wrong_backbone": lambda: odapi_world.write_config(
      "e2e_resnet", zoo="ssd_resnet50_v1_fpn_640x640_coco17_tpu-8.config", image_size=256
    ),
    "renamed": lambda: odapi_world.write_config(
      "e2e_renamed", checkpoint=odapi_world.checkpoints["renamed"]
    ),
    "tf1": lambda: odapi_world.write_config("e2e_tf1", checkpoint=tf1_checkpoint),
  }[scenario]()
  model_dir = tmp_path / "train"
  r = _run(f"--pipeline_config_path={config}", f"--model_dir={model_dir}")
  assert r.returncode == 1, r.stderr[-3000:]
  assert r.stdout.startswith("od_guard preflight: FAIL")
  assert f"({code})" in r.stdout
  assert "od_guard: preflight FAILED" in r.stderr
  assert _checkpoints(model_dir) == []  # nothing trained, nothing saved
  report = json.loads((model_dir / "od_guard" / "report.json").read_text())
  assert code in [f["code"] for f in report["findings"]]
  step, verdict = _event_value(str(model_dir), "train", "od_guard/verdict")
  assert (step, float(verdict)) == (0, 2.0)


def test_naming_rules_guard_the_od_apis_own_saves(odapi_world, tmp_path):
  rules = tmp_path / "rules.toml"
  rules.write_text('extends = ["odapi"]\n[rules]\nforbidden = ["^model/_box_predictor/"]\n')
  r, model_dir = _train(
    odapi_world,
    tmp_path,
    "e2e_naming",
    "--num_train_steps=2",
    "--num_steps_per_iteration=1",
    "--guard_naming_mode=error",
    f"--guard_naming_rules={rules}",
  )
  assert r.returncode == 1, r.stderr[-3000:]
  assert "NamingViolationError: The checkpoint just saved breaks the naming rules" in r.stderr
  assert _checkpoints(model_dir) == []  # the step-0 save was quarantined, nothing else ran
  assert (model_dir / "ckpt-1.quarantined.index").exists()


def test_guard_only_checks_and_exits(odapi_world, tmp_path):
  r, model_dir = _train(
    odapi_world,
    tmp_path,
    "e2e_only",
    "--guard_only",
    "--guard_report_dir",
    str(tmp_path / "r"),
  )
  assert r.returncode == 0, r.stderr[-3000:]
  assert (tmp_path / "r" / "report.json").exists() and (tmp_path / "r" / "report.txt").exists()
  assert _checkpoints(model_dir) == []


def test_missing_required_flag(tmp_path):
  r = _run(f"--model_dir={tmp_path}")
  assert r.returncode == 2
  assert "--pipeline_config_path is required (as for model_main_tf2)." in r.stderr


def test_flags_match_the_stock_binary_and_validate():
  from od_guard.odapi import model_main_tf2

  fv = flags.FlagValues()
  model_main_tf2.define_flags(fv)
  stock = {
    "pipeline_config_path": None,
    "num_train_steps": None,
    "eval_on_train_data": False,
    "sample_1_of_n_eval_examples": None,
    "sample_1_of_n_eval_on_train_examples": 5,
    "model_dir": None,
    "checkpoint_dir": None,
    "eval_timeout": 3600,
    "use_tpu": False,
    "tpu_name": None,
    "num_workers": 1,
    "checkpoint_every_n": 1000,
    "record_summaries": True,
  }
  assert {name: fv[name].default for name in stock} == stock
  with pytest.raises(
    flags.IllegalFlagValueError, match="--num_steps_per_iteration must be a whole number >= 1."
  ):
    fv(["prog", "--num_steps_per_iteration=0"])
  fv2 = flags.FlagValues()
  model_main_tf2.define_flags(fv2)
  with pytest.raises(
    flags.IllegalFlagValueError,
    match="--guard_min_backbone_coverage must be a fraction between 0 and 1.",
  ):
    fv2(["prog", "--guard_min_backbone_coverage=1.5"])


def test_preflight_under_mirrored_strategy_on_two_logical_cpus(odapi_world, tmp_path):
  """The preflight builds the model with MirroredVariables, as training would,
  and its prediction holds for every replica of a real restore."""
  script = textwrap.dedent(f"""
      import json, sys
      import numpy as np
      import tensorflow as tf
      cpu = tf.config.list_physical_devices("CPU")[0]
      tf.config.set_logical_device_configuration(
          cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
      from od_guard.odapi import preflight
      from od_guard.odapi import model as odapi_model
      from od_guard.restore import live_graph
      from od_guard.restore import matching as restore_match
      from od_guard.checkpoint import inventory
      from od_guard.testing import tiny_odapi
      strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
      config_path = {odapi_world.write_config("mirrored")!r}
      report = preflight.check(config_path, strategy=strategy)
      config = tiny_odapi.load_pipeline_config(config_path)
      model = odapi_model.build(config, strategy)
      roots = odapi_model.restore_roots(model, "detection")
      graph = live_graph.capture(roots, model={{"model": model}})
      prefix = config.train_config.fine_tune_checkpoint
      predicted = restore_match.match(graph, inventory.read_inventory(
          prefix, object_graph="full"))
      with strategy.scope():
        for v in model.variables:
          v.assign(tf.fill(v.shape, tf.constant(-7.25, v.dtype)))
        tf.train.Checkpoint(**roots).restore(prefix).expect_partial()
      changed_everywhere = set()
      by_id = {{id(v): v for v in model.variables}}
      replicas_agree = True
      for uid, v in by_id.items():
        values = [t.numpy() for t in strategy.experimental_local_results(v)]
        changed = [not np.all(x == -7.25) for x in values]
        replicas_agree &= len(set(changed)) == 1
        if all(changed):
          changed_everywhere.add(graph.variables[uid].path)
      print(json.dumps({{
          "strategy": report.strategy,
          "decision": report.verdict.decision,
          "mirrored": type(model.variables[0]).__name__,
          "same": changed_everywhere == {{b.path for b in predicted.restored}},
          "replicas_agree": bool(replicas_agree),
      }}))
  """)
  r = _python(script)
  result = json.loads(r.stdout.strip().splitlines()[-1])
  assert result == {
    "strategy": "MirroredStrategy (2 replicas)",
    "decision": "pass",
    "mirrored": "MirroredVariable",
    "same": True,
    "replicas_agree": True,
  }


if __name__ == "__main__":
  sys.exit(pytest.main([__file__, "-q"]))
