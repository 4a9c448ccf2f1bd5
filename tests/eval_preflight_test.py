"""The eval preflight (`--checkpoint_dir`): the checkpoint evaluation will load,
matched against the eval model with the whole-model restore eval_continuously
runs, before evaluation waits for checkpoints.

Stock model_main_tf2, run once by hand on the same set-up (a 3-class checkpoint,
an eval config with num_classes 5, TF 2.15.1, OD API 2.8.0.post1): the restore
raised nothing (`expect_partial()`, deferred); evaluation ran with the mismatched
class head and failed after 1 min 55 s with "InvalidArgumentError ... Expected
size[0] in [0, 64], but got 96" in MultiClassNonMaxSuppression, then
"TypeError: 'NoneType' object is not iterable" in eager_eval_loop.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from od_guard.odapi import preflight
from od_guard.restore import findings

pytestmark = pytest.mark.odapi


def _eval_dir(odapi_world) -> str:
  """Training's model_dir as eval sees it: the world's detection checkpoint."""
  return os.path.dirname(odapi_world.checkpoints["detection"])


def test_num_classes_change_between_train_and_eval_exits_1_before_evaluating(odapi_world, tmp_path):
  config = odapi_world.write_config("eval_5_classes", num_classes=5)
  r = subprocess.run(
    [
      sys.executable,
      "-m",
      "od_guard.model_main_tf2",
      f"--pipeline_config_path={config}",
      f"--model_dir={tmp_path}",
      f"--checkpoint_dir={_eval_dir(odapi_world)}",
      "--eval_timeout=1",
    ],
    capture_output=True,
    text=True,
    timeout=240,
  )
  assert r.returncode == 1, r.stderr[-3000:]
  assert "eval preflight FAILED" in r.stderr
  assert "Waiting for new checkpoint" not in r.stderr  # evaluation never started
  report = json.loads((tmp_path / "od_guard" / "eval" / "report.json").read_text())
  codes = {(f["code"], f["severity"]) for f in report["findings"]}
  assert ("num_classes_differ", "error") in codes
  # The fix is evaluation's: not the fine-tune settings a training run would change.
  fix = next(f["fix"] for f in report["findings"] if f["code"] == "num_classes_differ")
  assert "fine_tune_checkpoint_type" not in fix
  assert fix.startswith("Evaluate with the config the checkpoint was trained with")
  assert ("shape_mismatch", "info") in codes  # the head's mismatches, its consequence
  assert len(report["restore"]["shape_mismatches"]) == 12


def test_matching_eval_config_passes_with_every_variable_restored(odapi_world):
  report = preflight.check_eval(odapi_world.write_config("eval_same"), _eval_dir(odapi_world))
  assert not report.verdict.failed, report.verdict.reasons
  assert not report.restore.missing and not report.restore.shape_mismatches
  assert report.config["effective_checkpoint_type"] == "full"


def test_no_checkpoint_yet_is_no_failure(odapi_world, tmp_path):
  report = preflight.check_eval(odapi_world.write_config("eval_wait"), str(tmp_path))
  assert not report.verdict.failed
  assert report.finding("eval_checkpoint_pending").severity == findings.INFO
  assert report.restore is None
