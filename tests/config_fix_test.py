"""`od-guard fix`: the fixes that need no guess, applied to the config's text
with every other byte kept, written atomically with a .bak, then checked again."""

from __future__ import annotations

import json
import os
import pathlib
import shutil

import pytest

from od_guard.odapi import config_fix

from conftest import DATA
from conftest import cli_in_process

pytestmark = pytest.mark.plain

ZOO = "ssd_mobilenet_v2_320x320_coco17_tpu-8"


def _edit(field: str, new: str | None) -> config_fix.Edit:
  return config_fix.Edit(field, "", new, "test")


@pytest.mark.parametrize(
  ("before", "edits", "after"),
  [
    (
      'train_config {\r\n  fine_tune_checkpoint_type: "classification"  # why?\r\n}\r\n',
      [_edit("train_config.fine_tune_checkpoint_type", "detection")],
      'train_config {\r\n  fine_tune_checkpoint_type: "detection"  # why?\r\n}\r\n',
    ),
    (
      "model {\n\tssd {\n\t\tnum_classes:\t90 # coco\n\t}\n}\n",
      [_edit("model.ssd.num_classes", "3")],
      "model {\n\tssd {\n\t\tnum_classes:\t3 # coco\n\t}\n}\n",
    ),
    (
      "train_config { fine_tune_checkpoint_type: # a comment inside the value\n 'classification' }\n",
      [_edit("train_config.fine_tune_checkpoint_type", "detection")],
      "train_config { fine_tune_checkpoint_type: # a comment inside the value\n 'detection' }\n",
    ),
    (
      "train_config {\n  # keep me\n  load_all_detection_checkpoint_vars: true\n  num_steps: 5\n}\n",
      [_edit("train_config.load_all_detection_checkpoint_vars", None)],
      "train_config {\n  # keep me\n  num_steps: 5\n}\n",
    ),
    (
      "train_config { load_all_detection_checkpoint_vars: true num_steps: 5 }\n",
      [_edit("train_config.load_all_detection_checkpoint_vars", None)],
      "train_config {  num_steps: 5 }\n",
    ),
    (
      'train_config { fine_tune_checkpoint: "C:\\\\a\\\\b" }\n',
      [_edit("train_config.fine_tune_checkpoint", 'x/"y"/ckpt-0')],
      'train_config { fine_tune_checkpoint: "x/\\"y\\"/ckpt-0" }\n',
    ),
    (
      "train_config {\r\n\tfine_tune_checkpoint: 'a/ckpt-0'  # zoo\r\n\tload_all_detection_checkpoint_vars: true\r\n}\r\n",
      [
        _edit("train_config.load_all_detection_checkpoint_vars", None),
        config_fix.Edit("train_config.fine_tune_checkpoint_type", "", "detection", "t", "train_config.fine_tune_checkpoint"),
        config_fix.Edit("train_config.fine_tune_checkpoint_version", "", "V2", "t", "train_config.fine_tune_checkpoint"),
      ],
      "train_config {\r\n\tfine_tune_checkpoint: 'a/ckpt-0'  # zoo\r\n\tfine_tune_checkpoint_type: 'detection'\r\n\tfine_tune_checkpoint_version: V2\r\n}\r\n",
    ),
    (
      'train_config { fine_tune_checkpoint: "a/ckpt-0" num_steps: 1 }',
      [config_fix.Edit("train_config.fine_tune_checkpoint_version", "", "V2", "t", "train_config.fine_tune_checkpoint")],
      'train_config { fine_tune_checkpoint: "a/ckpt-0" fine_tune_checkpoint_version: V2 num_steps: 1 }',
    ),
  ],
  ids=["crlf_comment", "tabs", "comment_inside_value", "drop_line", "drop_inline", "quoting", "add_lines", "add_inline"],
)  # fmt: skip
def test_apply_keeps_every_other_byte(before, edits, after):
  got, applied, skipped = config_fix.apply(before, edits)
  assert got == after and applied == edits and skipped == []


def test_duplicate_and_absent_fields_are_not_edited():
  text = "model { ssd { num_classes: 1 } ssd { num_classes: 2 } }\n"
  got, applied, skipped = config_fix.apply(
    text, [_edit("model.ssd.num_classes", "3"), _edit("train_config.num_steps", "1")]
  )
  assert got == text and applied == []
  assert skipped == [
    ("model.ssd.num_classes (test)", "written 2 times: not edited"),
    ("train_config.num_steps (test)", "not written in the config: not edited"),
  ]


def _broken(root: pathlib.Path, *, bom: bool = False) -> pathlib.Path:
  """The zoo's config as a user got it wrong: a classification type for a
  detection checkpoint, a TF1 field, num_classes against the label map, and
  fine_tune_checkpoint naming the .index file."""
  (root / "ckpt").mkdir(parents=True)
  shutil.copy(DATA / "zoo_indexes" / ZOO / "ckpt-0.index", root / "ckpt" / "ckpt-0.index")
  (root / "label_map.pbtxt").write_text("item { id: 1 name: 'a' }\nitem { id: 2 name: 'b' }\n")
  (root / "train.record").write_bytes(b"")
  text = (DATA / "zoo_configs" / f"{ZOO}.config").read_text()
  text = text.replace('"PATH_TO_BE_CONFIGURED/mobilenet_v2.ckpt-1"', f'"{root}/ckpt/ckpt-0.index"')
  text = text.replace(
    'fine_tune_checkpoint_type: "classification"',
    'fine_tune_checkpoint_type: "classification"\n  load_all_detection_checkpoint_vars: true',
  )
  text = text.replace("num_classes: 90", "num_classes: 5")
  text = text.replace('"PATH_TO_BE_CONFIGURED/label_map.txt"', f'"{root}/label_map.pbtxt"')
  for name in ("train2017-?????-of-00256", "val2017-?????-of-00032"):
    text = text.replace(f'"PATH_TO_BE_CONFIGURED/{name}.tfrecord"', f'"{root}/train.record"')
  path = root / "pipeline.config"
  path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.replace("\n", "\r\n").encode())
  return path


def test_a_config_with_a_byte_order_mark_is_refused_untouched(tmp_path):
  """The OD API's text-format parser refuses a BOM, and so does the check."""
  path = _broken(tmp_path, bom=True)
  original = path.read_bytes()
  r = cli_in_process("fix", "--pipeline_config_path", str(path), "--write")
  assert r.returncode == 2 and "ConfigError" in r.stderr
  assert path.read_bytes() == original and not (tmp_path / "pipeline.config.bak").exists()


def test_fix_write_turns_a_broken_config_into_one_that_passes(tmp_path):
  bom = False
  path = _broken(tmp_path)
  original = path.read_bytes()
  r = cli_in_process("check", "--static", "--pipeline_config_path", str(path))
  assert r.returncode == 1, r.stdout
  r = cli_in_process("fix", "--pipeline_config_path", str(path))
  assert r.returncode == 1 and path.read_bytes() == original  # a diff only
  assert r.stdout.startswith(f"--- a/{path}\n+++ b/{path}\n")
  assert '-  fine_tune_checkpoint_type: "classification"\r\n' in r.stdout
  assert '+  fine_tune_checkpoint_type: "detection"\r\n' in r.stdout
  assert r.stdout.rstrip().endswith("od-guard fix: 4 edit(s); --write applies them")
  r = cli_in_process("fix", "--pipeline_config_path", str(path), "--write", "--json")
  payload = json.loads(r.stdout)
  assert r.returncode == 0, r.stdout
  assert payload["written"] and payload["verdict"]["decision"] in ("pass", "warn")
  assert sorted(e["code"] for e in payload["applied"]) == [
    "checkpoint_path_is_file",
    "checkpoint_type_mismatch",
    "label_map_num_classes_differ",
    "tf1_config_field",
  ]
  assert (tmp_path / "pipeline.config.bak").read_bytes() == original
  fixed = path.read_bytes()
  assert fixed.startswith(b"\xef\xbb\xbf") == bom
  changed = (b"fine_tune_checkpoint", b"num_classes", b"load_all_detection_checkpoint_vars")
  keep = [line for line in original.split(b"\r\n") if not line.strip().startswith(changed)]
  assert keep == [line for line in fixed.split(b"\r\n") if not line.strip().startswith(changed)]
  assert f'fine_tune_checkpoint: "{tmp_path}/ckpt/ckpt-0"\r\n'.encode() in fixed
  r = cli_in_process("check", "--static", "--pipeline_config_path", str(path))
  assert r.returncode == 0, r.stdout
  r = cli_in_process("fix", "--pipeline_config_path", str(path))
  assert r.returncode == 0 and "od-guard fix: nothing to fix" in r.stdout


def test_no_guess_without_a_single_candidate(tmp_path):
  path = tmp_path / "pipeline.config"
  path.write_text(
    "model { ssd { num_classes: 1 feature_extractor { type: 'ssd_mobilenet_v2_keras' } } }\n"
    'train_config { fine_tune_checkpoint: "/nowhere/ckpt-0" fine_tune_checkpoint_type: "detection" }\n'
  )
  r = cli_in_process("fix", "--pipeline_config_path", str(path))
  assert r.returncode == 0, r.stdout
  assert (
    "not fixed: checkpoint_not_found: no single checkpoint was found near the path: not guessed"
  ) in r.stdout


def test_write_refuses_links_read_only_files_and_files_changed_meanwhile(tmp_path):
  path = _broken(tmp_path)
  link = tmp_path / "link.config"
  os.symlink(path, link)
  r = cli_in_process("fix", "--pipeline_config_path", str(link), "--write")
  assert (
    r.returncode == 2
    and "is a symbolic link: od-guard fix does not write through links" in r.stderr
  )
  os.chmod(path, 0o444)
  try:
    r = cli_in_process("fix", "--pipeline_config_path", str(path), "--write")
    assert r.returncode == 2 and "is read-only" in r.stderr
  finally:
    os.chmod(path, 0o644)
  from od_guard.odapi import preflight

  static = preflight.read(str(path))
  report = preflight.check_static(str(path), static=static)
  plan = config_fix.plan(str(path), list(report.findings), static.context.config)
  path.write_bytes(path.read_bytes() + b"# edited meanwhile\n")
  with pytest.raises(config_fix.FixError, match="changed since od-guard fix read it"):
    config_fix.write(plan)
  assert not (tmp_path / "pipeline.config.bak").exists()


def test_fix_write_killed_at_any_moment_leaves_the_old_or_the_new_file(tmp_path):
  """SIGKILL at 24 moments spread over a whole `fix --write`: the config is
  always the original or the fixed text, never a mix, and a .bak, when there
  is one, is the original."""
  import signal
  import subprocess
  import sys
  import time

  from conftest import REPO

  path = _broken(tmp_path)
  original = path.read_bytes()
  code = "import sys\nfrom od_guard import cli\nsys.exit(cli.main(sys.argv[1:]))\n"
  argv = [sys.executable, "-c", code, "fix", "--pipeline_config_path", str(path), "--write"]
  env = dict(os.environ, PYTHONPATH=str(REPO))
  start = time.perf_counter()
  subprocess.run(argv, env=env, check=True, capture_output=True)
  whole = time.perf_counter() - start
  fixed = path.read_bytes()
  assert fixed != original
  outcomes = set()
  for i in range(24):
    path.write_bytes(original)
    for leftover in tmp_path.glob("*.bak"):
      leftover.unlink()
    child = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(whole * i / 20)
    child.send_signal(signal.SIGKILL)
    child.wait()
    now = path.read_bytes()
    assert now in (original, fixed), f"a mix after a kill at {whole * i / 20:.3f} s"
    backup = tmp_path / "pipeline.config.bak"
    assert not backup.exists() or backup.read_bytes() == original
    outcomes.add(now == fixed)
  assert outcomes == {False, True}  # kills landed before and after the replace


def test_check_json_carries_each_findings_edits_or_why_not(tmp_path):
  path = _broken(tmp_path)
  r = cli_in_process("check", "--static", "--json", "--pipeline_config_path", str(path))
  found = json.loads(r.stdout)["findings"]
  by_code = {f["code"]: f for f in found if f["severity"] != "info"}
  assert all(f["edits"] == [] and "no_edit" not in f for f in found if f["severity"] == "info")
  assert by_code["checkpoint_path_is_file"]["edits"] == [
    {
      "field": "train_config.fine_tune_checkpoint",
      "old": f"{tmp_path}/ckpt/ckpt-0.index",
      "new": f"{tmp_path}/ckpt/ckpt-0",
      "code": "checkpoint_path_is_file",
      "after": "",
    }
  ]
  assert by_code["tf1_config_field"]["edits"][0]["new"] is None
  assert by_code["data_shard_missing"] == {
    **by_code["data_shard_missing"],
    "edits": [],
    "no_edit": "no machine-applicable fix",
  }
