"""The drop-in's failing verdict ends with the `od-guard fix` command when its
fixes are edits of the config, and that command makes the config pass.

The static tier decides these set-ups before TensorFlow is imported, so this
runs wherever od_guard is installed (tensorflow/models#8892: a detection
checkpoint fine-tuned with fine_tune_checkpoint_type "classification").
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import scenarios_test as scenarios

from conftest import REPO
from conftest import cli_in_process

pytestmark = [
  pytest.mark.plain,
  pytest.mark.skipif(not scenarios.ZOO_INDEX.is_file(), reason="needs tests/data/zoo_indexes"),
]
world = scenarios.world  # the fixture: a zoo-style tree with a record and a label map


def _dropin(config: str, model_dir: str) -> subprocess.CompletedProcess:
  return subprocess.run(
    [
      sys.executable,
      "-m",
      "od_guard.model_main_tf2",
      f"--pipeline_config_path={config}",
      f"--model_dir={model_dir}",
    ],
    capture_output=True,
    text=True,
    timeout=120,
    env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
  )


def test_a_fixable_failure_names_the_fix_command_and_the_fix_passes(world):
  config = scenarios._config(
    world.root,
    checkpoint=scenarios._zoo_ckpt(world.folder),
    record=world.record,
    label_map=world.label_map,
    ctype="classification",
  )
  r = _dropin(config, str(world.root / "train"))
  assert r.returncode == 1, r.stderr[-2000:]
  assert "preflight FAILED before importing TensorFlow" in r.stderr
  assert (
    "od_guard: 1 of 2 can be fixed in the config (checkpoint_type_mismatch): od-guard fix "
    f"--pipeline_config_path={config} --write"
  ) in r.stderr
  fixed = cli_in_process("fix", "--pipeline_config_path", config, "--write")
  assert fixed.returncode == 0, fixed.stdout + fixed.stderr
  # The index-only zoo copy still fails training (data_shard_missing), not the check.
  check = cli_in_process("check", "--static", "--pipeline_config_path", config)
  assert check.returncode == 0, check.stdout


def test_a_failure_without_config_edits_names_no_fix_command(world):
  config = scenarios._config(
    world.root,
    checkpoint="PATH_TO_BE_CONFIGURED/mobilenet_v2.ckpt-1",
    record=world.record,
    label_map=world.label_map,
  )
  r = _dropin(config, str(world.root / "train"))
  assert r.returncode == 1, r.stderr[-2000:]
  assert "placeholder_path" in r.stderr
  assert "od-guard fix" not in r.stderr
