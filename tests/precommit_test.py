"""The repository's pre-commit hooks (.pre-commit-hooks.yaml), run by pre-commit
itself (`pre-commit try-repo`) in a sample repository holding a user's
pipeline.config and checkpoint, as a user's repository would.

pre-commit installs the hooks' repository with `pip install .` into a virtual
environment of its own (in a tmp PRE_COMMIT_HOME; pip's cache is reused): the
hooks run with what od_guard declares, nothing more.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys

import pytest

from conftest import REPO
from conftest import SIGN_LANGUAGE
from conftest import needs_realworld

pytestmark = [pytest.mark.installs, needs_realworld]

_GIT = ("git", "-c", "user.name=od_guard tests", "-c", "user.email=tests@od-guard.invalid")
# The user's own layout: their config names these paths relative to the
# repository's root, where pre-commit runs hooks.
_WORKSPACE = "Tensorflow/workspace"
_CHECKPOINT = (
  f"{_WORKSPACE}/pre-trained-models/ssd_mobilenet_v2_fpnlite_320x320_coco17_tpu-8/checkpoint/ckpt-0"
)
_CONFIG = f"{_WORKSPACE}/models/my_ssd_mobnet/pipeline.config"


def _git(cwd: pathlib.Path, *args: str) -> str:
  return subprocess.run([*_GIT, *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


@pytest.fixture(scope="module")
def hooks_repo(tmp_path_factory) -> pathlib.Path:
  """This working tree as a git repository of one commit (try-repo clones a
  repository; untracked new files would be missed by cloning REPO itself)."""
  if shutil.which("git") is None:
    pytest.skip("needs git")
  pytest.importorskip("pre_commit", reason="needs pre-commit (the plain environment has it)")
  root = tmp_path_factory.mktemp("hooks_repo")
  listed = _git(REPO, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
  for name in filter(None, listed.split("\0")):
    source = REPO / name
    if source.is_file():
      (root / name).parent.mkdir(parents=True, exist_ok=True)
      shutil.copy2(source, root / name)
  _git(root, "init", "-q")
  _git(root, "add", "-A")
  _git(root, "commit", "-q", "-m", "od_guard under test")
  return root


def _write_config(sample: pathlib.Path, checkpoint_type: str) -> None:
  """The user's config as they wrote it, but for fine_tune_checkpoint_type."""
  text = (SIGN_LANGUAGE / "pipeline.config").read_text()
  assert f'fine_tune_checkpoint: "{_CHECKPOINT}"' in text
  assert 'fine_tune_checkpoint_type: "detection"' in text
  text = text.replace(
    'fine_tune_checkpoint_type: "detection"', f'fine_tune_checkpoint_type: "{checkpoint_type}"'
  )
  (sample / _CONFIG).write_text(text)
  _git(sample, "add", "-A")


@pytest.fixture
def sample_repo(tmp_path) -> pathlib.Path:
  """The sign-language model's repository as its user laid it out: the config,
  the zoo checkpoint it fine-tunes from (its index, as the shared data has it),
  the label map and the records the input readers name."""
  sample = tmp_path / "sample"
  annotations = sample / _WORKSPACE / "annotations"
  for directory in (annotations, (sample / _CHECKPOINT).parent, (sample / _CONFIG).parent):
    directory.mkdir(parents=True)
  shutil.copy(SIGN_LANGUAGE / "checkpoint" / "ckpt-0.index", sample / f"{_CHECKPOINT}.index")
  shutil.copy(SIGN_LANGUAGE / "label_map.pbtxt", annotations / "label_map.pbtxt")
  for record in ("train.record", "test.record"):
    (annotations / record).write_bytes(b"")  # stands in for the user's data
  _git(sample, "init", "-q")
  _write_config(sample, "detection")
  return sample


def _try_repo(hooks_repo: pathlib.Path, sample: pathlib.Path, home: pathlib.Path, *more: str):
  """Runs every hook of `hooks_repo` on every file of `sample`. try-repo builds
  the hooks' environment afresh each time (~25 s), so each call runs both."""
  return subprocess.run(
    [sys.executable, "-m", "pre_commit", "try-repo", str(hooks_repo), "--all-files", *more],
    cwd=sample,
    capture_output=True,
    text=True,
    timeout=900,
    env=dict(os.environ, PRE_COMMIT_HOME=str(home), PRE_COMMIT_COLOR="never"),
  )


def _hook_lines(stdout: str) -> dict[str, str]:
  """hook name -> Passed / Failed / (no files to check)Skipped, from pre-commit's summary."""
  out = {}
  for line in stdout.splitlines():
    for status in ("Passed", "Failed", "Skipped"):
      if line.endswith(status) and "..." in line:
        out[line.split("...")[0].rstrip(".")] = status
  return out


LINT = "od-guard lint (checkpoint variable names)"
CHECK = "od-guard check --static (pipeline.config against its checkpoint)"


def test_hooks_fail_on_the_wrong_checkpoint_type_and_pass_when_fixed(
  hooks_repo, sample_repo, tmp_path
):
  _write_config(sample_repo, "classification")
  r = _try_repo(hooks_repo, sample_repo, tmp_path / "pre_commit_home")
  assert r.returncode == 1, r.stdout + r.stderr
  assert _hook_lines(r.stdout) == {LINT: "Passed", CHECK: "Failed"}, r.stdout
  assert "od_guard preflight: FAIL (1 error" in r.stdout
  assert "(checkpoint_type_mismatch)" in r.stdout
  assert 'fix: Set fine_tune_checkpoint_type: "detection"' in r.stdout

  _write_config(sample_repo, "detection")
  r = _try_repo(hooks_repo, sample_repo, tmp_path / "pre_commit_home")
  assert r.returncode == 0, r.stdout + r.stderr
  assert _hook_lines(r.stdout) == {LINT: "Passed", CHECK: "Passed"}, r.stdout


_ELSEWHERE = "/mnt/training/pre-trained-models/ssd_mobilenet_v2_fpnlite_320x320_coco17_tpu-8"


def _config_elsewhere(sample: pathlib.Path, checkpoint_type: str) -> None:
  """The user's config as a team's repository holds it: the zoo checkpoint on
  the training machine's mount, the records in a bucket, the label map
  committed beside the config, and a TF1 field the team knows about."""
  text = (SIGN_LANGUAGE / "pipeline.config").read_text()
  text = text.replace(
    f"{_WORKSPACE}/pre-trained-models/ssd_mobilenet_v2_fpnlite_320x320_coco17_tpu-8", _ELSEWHERE
  )
  text = text.replace(
    f'input_path: "{_WORKSPACE}/annotations/', 'input_path: "gs://team-bucket/records/'
  )
  text = text.replace(f'"{_WORKSPACE}/annotations/label_map.pbtxt"', '"configs/label_map.pbtxt"')
  text = text.replace(
    'fine_tune_checkpoint_type: "detection"',
    f'fine_tune_checkpoint_type: "{checkpoint_type}"\n  load_all_detection_checkpoint_vars: true',
  )
  assert _WORKSPACE not in text
  (sample / "configs" / "pipeline.config").write_text(text)
  _git(sample, "add", "-A")


def test_a_repository_without_the_data(hooks_repo, tmp_path):
  """A correct config whose data lives elsewhere passes the hook; a code the
  project ignores in pyproject.toml is honoured; a wrong type still fails."""
  sample = tmp_path / "team"
  (sample / "configs").mkdir(parents=True)
  shutil.copy(SIGN_LANGUAGE / "label_map.pbtxt", sample / "configs" / "label_map.pbtxt")
  (sample / "pyproject.toml").write_text(
    '[project]\nname = "team-models"\n\n[tool.od_guard]\nignore = ["tf1_config_field"]\n'
  )
  _git(sample, "init", "-q")
  _config_elsewhere(sample, "detection")
  home = tmp_path / "pre_commit_home"
  r = _try_repo(hooks_repo, sample, home, "--verbose")
  assert r.returncode == 0, r.stdout + r.stderr
  assert _hook_lines(r.stdout)[CHECK] == "Passed", r.stdout
  assert "od_guard preflight: PASS  [policy default, static tier]" in r.stdout
  assert (
    f"  - the fine-tune checkpoint {_ELSEWHERE}/checkpoint/ckpt-0 (outside the repository"
    in r.stdout
  )
  assert "(gs:// without credentials here)" in r.stdout
  assert "ignored: 1 finding(s) kept out of the verdict: tf1_config_field (by --ignore)" in r.stdout
  assert f"settings: [tool.od_guard] of {sample / 'pyproject.toml'}" in r.stdout

  _config_elsewhere(sample, "classification")
  r = _try_repo(hooks_repo, sample, home)
  assert r.returncode == 1, r.stdout + r.stderr
  assert _hook_lines(r.stdout)[CHECK] == "Failed", r.stdout
  assert "od_guard preflight: FAIL (1 error)" in r.stdout
  assert "(checkpoint_type_mismatch)" in r.stdout
  assert "names the zoo archive ssd_mobilenet_v2_fpnlite_320x320_coco17_tpu-8" in r.stdout
  assert 'fix: Set fine_tune_checkpoint_type: "detection"' in r.stdout


if __name__ == "__main__":
  sys.exit(pytest.main([__file__, "-q"]))
