"""`od-guard check --static --where repo`: a repository without the data.

Each test lays out a real git repository in a temporary directory, as a team's
repository holds its configs: the paths that cannot exist there are facts
("not checked here"), everything decidable from the config and the committed
files still fails, and `--where training` (the default) is unchanged.
"""

from __future__ import annotations

import json
import pathlib
import shutil
import subprocess

import pytest

from conftest import DATA
from conftest import cli_in_process

pytestmark = [
  pytest.mark.plain,
  pytest.mark.skipif(shutil.which("git") is None, reason="needs git"),
]

ZOO = "ssd_mobilenet_v2_320x320_coco17_tpu-8"
_ZOO_CONFIG = DATA / "zoo_configs" / f"{ZOO}.config"
_MOUNT = f"/mnt/training/pre-trained-models/{ZOO}/checkpoint/ckpt-0"


def _config(
  *,
  checkpoint: str = _MOUNT,
  ctype: str = "detection",
  train: str = "gs://team-bucket/records/train-?????-of-00010.tfrecord",
  label_map: str = "annotations/label_map.pbtxt",
  num_classes: int = 2,
  extra: str = "",
) -> str:
  text = _ZOO_CONFIG.read_text()
  text = text.replace('"PATH_TO_BE_CONFIGURED/mobilenet_v2.ckpt-1"', f'"{checkpoint}"')
  text = text.replace(
    'fine_tune_checkpoint_type: "classification"', f'fine_tune_checkpoint_type: "{ctype}"{extra}'
  )
  text = text.replace("num_classes: 90", f"num_classes: {num_classes}")
  text = text.replace('"PATH_TO_BE_CONFIGURED/label_map.txt"', f'"{label_map}"')
  text = text.replace('"PATH_TO_BE_CONFIGURED/train2017-?????-of-00256.tfrecord"', f'"{train}"')
  return text.replace(
    '"PATH_TO_BE_CONFIGURED/val2017-?????-of-00032.tfrecord"', '"/data/records/val.tfrecord"'
  )  # fmt: skip


@pytest.fixture
def repo(tmp_path, monkeypatch) -> pathlib.Path:
  root = tmp_path / "team_repo"
  (root / "annotations").mkdir(parents=True)
  (root / "models" / "ssd").mkdir(parents=True)
  (root / "annotations" / "label_map.pbtxt").write_text(
    "item { id: 1 name: 'a' }\nitem { id: 2 name: 'b' }\n"
  )
  (root / ".gitignore").write_text("data/\n*.tfrecord\n")
  subprocess.run(["git", "init", "-q", str(root)], check=True)
  monkeypatch.chdir(root)  # pre-commit runs hooks at the repository's root
  monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
  monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "no_gcloud"))
  monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no_aws"))
  for name in ("AWS_ACCESS_KEY_ID", "AWS_PROFILE", "AWS_WEB_IDENTITY_TOKEN_FILE"):
    monkeypatch.delenv(name, raising=False)
  return root


def _check(repo: pathlib.Path, text: str, *args: str):
  (repo / "models" / "ssd" / "pipeline.config").write_text(text)
  r = cli_in_process(
    "check", "--static", "--json", "--pipeline_config_path", "models/ssd/pipeline.config", *args
  )
  assert r.returncode in (0, 1), r.stderr
  return r.returncode, json.loads(r.stdout)


def _codes(payload, severity: str | None = None) -> list[str]:
  return sorted(f["code"] for f in payload["findings"] if severity in (None, f["severity"]))


def test_a_correct_config_with_its_data_elsewhere_passes(repo):
  code, payload = _check(repo, _config(), "--where", "repo")
  assert code == 0 and payload["verdict"]["decision"] == "pass", payload["findings"]
  here = {
    f["data"]["field"]: f["data"]["why"]
    for f in payload["findings"]
    if f["code"] == "not_checked_here"
  }
  assert here == {
    "train_config.fine_tune_checkpoint": f"outside the repository ({repo.resolve()})",
    "train_input_reader.tf_record_input_reader.input_path": "gs:// without credentials here",
    "eval_input_reader[0].tf_record_input_reader.input_path": f"outside the repository ({repo.resolve()})",
  }  # fmt: skip
  assert payload["where"] == "repo"
  assert any(
    n.startswith(f"the fine-tune checkpoint {_MOUNT} (outside") for n in payload["not_checked"]
  )
  # At training time nothing changes: the same config fails where the files must be.
  code, payload = _check(repo, _config())
  assert code == 1 and "where" not in payload
  assert "checkpoint_not_found" in _codes(payload, "error")
  assert "input_path_missing" in _codes(payload, "warning")  # the eval reader's /data
  assert "not_checked_here" not in _codes(payload)


def test_the_text_mode_says_what_was_not_checked_and_how(repo):
  (repo / "models" / "ssd" / "pipeline.config").write_text(_config())
  r = cli_in_process(
    "check", "--static", "--where", "repo", "--pipeline_config_path", "models/ssd/pipeline.config"
  )
  assert r.returncode == 0
  assert r.stdout.startswith("od_guard preflight: PASS  [policy default, static tier]\n")
  assert (
    f"  - the fine-tune checkpoint {_MOUNT} (outside the repository ({repo.resolve()})): its "
    "format, version, type and architecture against the config; commit its .index or pass "
    "--checkpoint to check them\n"
  ) in r.stdout


@pytest.mark.parametrize(
  ("changes", "error"),
  [
    ({"ctype": "classification"}, "checkpoint_type_mismatch"),
    ({"checkpoint": "/mnt/m/faster_rcnn_resnet50_v1_640x640_coco17_tpu-8/checkpoint/ckpt-0"}, "meta_architecture_mismatch"),
    ({"checkpoint": "PATH_TO_BE_CONFIGURED/checkpoint/ckpt-0"}, "placeholder_path"),
    ({"checkpoint": "C:\\\\Users\\\\me\\\\models\\\\ckpt-0"}, "windows_path_separator"),
    ({"train": "PATH_TO_BE_CONFIGURED/train.record"}, "input_path_placeholder"),
    ({"train": "annotations/train.recordd"}, "input_path_missing"),  # a typo in the repository
    ({"label_map": "annotations/labelmap.pbtxt"}, "input_path_missing"),
    ({"extra": "\n  load_all_detection_checkpoint_vars: true"}, "tf1_config_field"),
  ],
  ids=["type", "meta_architecture", "placeholder", "backslashes", "input_placeholder", "input_typo", "label_map_typo", "tf1_field"],
)  # fmt: skip
def test_what_the_config_decides_still_fails(repo, changes, error):
  code, payload = _check(repo, _config(**changes), "--where", "repo")
  assert code == 1, payload["findings"]
  assert error in _codes(payload, "error")


def test_a_tf1_extractor_name_still_fails(repo):
  text = _config().replace("type: 'ssd_mobilenet_v2_keras'", "type: 'ssd_mobilenet_v2'")
  code, payload = _check(repo, text, "--where", "repo")
  assert code == 1 and "tf1_feature_extractor" in _codes(payload, "error")


def test_num_classes_against_the_committed_label_map(repo):
  code, payload = _check(repo, _config(num_classes=5), "--where", "repo")
  assert code == 0 and payload["verdict"]["decision"] == "warn"
  assert _codes(payload, "warning") == ["label_map_num_classes_differ"] * 2


def test_files_git_ignores_are_not_checked_here(repo):
  code, payload = _check(repo, _config(train="data/train.tfrecord"), "--where", "repo")
  assert code == 0, payload["findings"]
  why = [f["data"]["why"] for f in payload["findings"] if f["code"] == "not_checked_here"]
  assert "ignored by git here (not committed)" in why


def test_a_committed_index_is_checked_against_the_config(repo):
  index = repo / "pretrained" / ZOO / "checkpoint" / "ckpt-0.index"
  index.parent.mkdir(parents=True)
  shutil.copy(DATA / "zoo_indexes" / ZOO / "ckpt-0.index", index)
  checkpoint = f"pretrained/{ZOO}/checkpoint/ckpt-0"
  code, payload = _check(repo, _config(checkpoint=checkpoint), "--where", "repo")
  assert code == 0, payload["findings"]
  assert payload["checkpoint"]["resolved"].endswith(checkpoint)
  assert "data_shard_missing" in _codes(payload)
  assert "not_checked_here" in _codes(payload)  # the records only
  code, payload = _check(
    repo, _config(checkpoint=checkpoint, ctype="classification"), "--where", "repo"
  )
  assert code == 1 and "checkpoint_type_mismatch" in _codes(payload, "error")


def test_checkpoint_points_at_a_local_copy(repo):
  index = repo / "local" / "ckpt-0.index"
  index.parent.mkdir()
  shutil.copy(DATA / "zoo_indexes" / ZOO / "ckpt-0.index", index)
  code, payload = _check(repo, _config(), "--where", "repo", "--checkpoint", "local/ckpt-0")
  assert code == 0 and payload["checkpoint"]["resolved"].endswith("local/ckpt-0")
  fields = [f["data"]["field"] for f in payload["findings"] if f["code"] == "not_checked_here"]
  assert "train_config.fine_tune_checkpoint" not in fields


def test_a_bucket_with_credentials_here_is_read(repo, monkeypatch, tmp_path):
  """With credentials the URI is checked (read), so the check does not pass it
  unseen; here the bucket is not there: a finding or a typed error."""
  monkeypatch.setenv("STORAGE_EMULATOR_HOST", "http://127.0.0.1:9")  # nothing listens
  monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "key.json"))
  (repo / "models" / "ssd" / "pipeline.config").write_text(
    _config(checkpoint=f"gs://team-bucket/{ZOO}/checkpoint/ckpt-0")
  )
  r = cli_in_process(
    "check", "--static", "--where", "repo", "--pipeline_config_path", "models/ssd/pipeline.config"
  )
  assert r.returncode in (1, 2) and "not checked here" not in r.stdout
