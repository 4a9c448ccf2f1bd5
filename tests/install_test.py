"""od_guard as users install it: `python -m build` makes an sdist and a wheel
from this tree (the wheel is built from the sdist, so the sdist is complete),
and the wheel, not an editable install, goes with its dependencies into a fresh
venv without TensorFlow or the OD API, where `od-guard` runs.

Everything is built in tmp dirs from a copy of the tree (git's view of it:
tracked and new files, nothing ignored), so the tree itself is never written.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys
import tarfile
import zipfile

import pytest

import od_guard

from conftest import REPO
from conftest import SIGN_LANGUAGE
from conftest import ZOO_COPIES
from conftest import needs_realworld

pytestmark = pytest.mark.installs
VERSION = od_guard.__version__
WHEEL = f"od_guard-{VERSION}-py3-none-any.whl"
SDIST = f"od_guard-{VERSION}.tar.gz"
DASHBOARD_STATIC = REPO / "od_guard" / "report" / "dashboard" / "static"


def _copy_tree(destination: pathlib.Path) -> None:
  """The files a clone of this tree would have, with uncommitted changes."""
  if shutil.which("git") is None or not (REPO / ".git").exists():
    ignore = shutil.ignore_patterns(
      ".git", ".venv", ".tools", "build", "dist", "*.egg-info", "__pycache__"
    )
    shutil.copytree(REPO, destination, ignore=ignore, dirs_exist_ok=True)
    return
  listed = subprocess.run(
    ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
    cwd=REPO,
    check=True,
    capture_output=True,
    text=True,
  ).stdout
  for name in filter(None, listed.split("\0")):
    if (REPO / name).is_file():
      (destination / name).parent.mkdir(parents=True, exist_ok=True)
      shutil.copy2(REPO / name, destination / name)


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> pathlib.Path:
  pytest.importorskip("build", reason="needs `build` (the plain environment has it)")
  tree = tmp_path_factory.mktemp("tree")
  _copy_tree(tree)
  out = tmp_path_factory.mktemp("dist")
  r = subprocess.run(
    [sys.executable, "-m", "build", "--outdir", str(out), str(tree)],
    capture_output=True,
    text=True,
    timeout=900,
  )
  assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
  return out


@pytest.fixture(scope="module")
def venv(tmp_path_factory, dist) -> pathlib.Path:
  """A fresh venv holding the wheel and what it declares (pinned as in the
  plain environment); no TensorFlow, no OD API."""
  root = tmp_path_factory.mktemp("venv")
  subprocess.run([sys.executable, "-m", "venv", str(root)], check=True, timeout=300)
  r = subprocess.run(
    [
      str(root / "bin" / "python"),
      *("-m", "pip", "install", "-q", "--disable-pip-version-check"),
      *("-c", str(REPO / "constraints" / "plain.txt")),
      str(dist / WHEEL),
    ],
    capture_output=True,
    text=True,
    timeout=900,
  )
  assert r.returncode == 0, r.stderr
  return root


def _od_guard(venv: pathlib.Path, *args: str, cwd: pathlib.Path) -> subprocess.CompletedProcess:
  """The installed `od-guard` command, away from the tree (no PYTHONPATH)."""
  env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
  return subprocess.run(
    [str(venv / "bin" / "od-guard"), *args],
    capture_output=True,
    text=True,
    cwd=cwd,
    env=env,
    timeout=120,
  )


def test_build_makes_an_sdist_and_a_wheel_of_this_version(dist):
  assert sorted(p.name for p in dist.iterdir()) == [WHEEL, SDIST]


def test_the_wheel_holds_every_module_and_nothing_else(dist):
  names = zipfile.ZipFile(dist / WHEEL).namelist()
  modules = {n for n in names if n.endswith(".py")}
  assert modules == {
    str(p.relative_to(REPO))
    for p in (REPO / "od_guard").rglob("*.py")
    if "__pycache__" not in p.parts
  }
  assert not [n for n in names if n.startswith(("tests/", "examples/", "benchmarks/"))]


def test_the_wheel_holds_the_tensorboard_plugins_frontend(dist):
  if not DASHBOARD_STATIC.is_dir():
    pytest.skip("no TensorBoard plugin frontend in this tree")
  wheel = zipfile.ZipFile(dist / WHEEL)
  static = {str(p.relative_to(REPO)) for p in DASHBOARD_STATIC.iterdir() if p.is_file()}
  assert static and static <= set(wheel.namelist())
  for name in static:
    assert wheel.read(name) == (REPO / name).read_bytes(), name
  entry_points = wheel.read(f"od_guard-{VERSION}.dist-info/entry_points.txt").decode()
  assert "[console_scripts]\nod-guard = od_guard.cli:run\n" in entry_points
  if (REPO / "od_guard" / "report" / "dashboard" / "plugin.py").is_file():
    assert "[tensorboard_plugins]\n" in entry_points


def test_the_sdist_holds_what_builds_the_wheel(dist):
  names = {n.split("/", 1)[1] for n in tarfile.open(dist / SDIST).getnames() if "/" in n}
  assert {"setup.cfg", "setup.py", "pyproject.toml", "README.md", "od_guard/__init__.py"} <= names
  if DASHBOARD_STATIC.is_dir():
    assert {str(p.relative_to(REPO)) for p in DASHBOARD_STATIC.iterdir()} <= names


def test_the_wheel_is_installed_not_the_tree(venv, tmp_path):
  python = str(venv / "bin" / "python")
  code = "import json, od_guard; print(json.dumps([od_guard.__file__, od_guard.__version__]))"
  r = subprocess.run([python, "-c", code], capture_output=True, text=True, cwd=tmp_path)
  where, version = json.loads(r.stdout)
  assert pathlib.Path(where).is_relative_to(venv) and "site-packages" in where
  assert version == VERSION
  r = subprocess.run([python, "-m", "pip", "show", "tensorflow"], capture_output=True, text=True)
  assert r.returncode == 1  # not installed


def test_version_names_the_versions_that_matter_here(venv, tmp_path):
  r = _od_guard(venv, "--version", cwd=tmp_path)
  assert r.returncode == 0, r.stderr
  protobuf = subprocess.run(
    [str(venv / "bin" / "python"), "-c", "import google.protobuf as p; print(p.__version__)"],
    capture_output=True,
    text=True,
  ).stdout.strip()
  lines = r.stdout.splitlines()
  assert lines[0] == f"od_guard {VERSION}"
  assert lines[1] == f"python {sys.version.split()[0]}"
  assert lines[2:5] == [
    "tensorflow not installed",
    f"protobuf {protobuf} (upb)",
    "object-detection not installed",
  ]
  assert lines[5].startswith("pipeline.config schema: none (the OD API is not installed")


@needs_realworld
def test_inspect_runs_from_the_wheel(venv, tmp_path):
  r = _od_guard(venv, "inspect", str(SIGN_LANGUAGE / "checkpoint"), cwd=tmp_path)
  assert r.returncode == 0, r.stderr
  assert "format:     TF2 object-based checkpoint" in r.stdout
  assert "backbone      260 tensors      2,257,984 params" in r.stdout


def test_static_check_runs_from_the_wheel(venv, tmp_path):
  config = ZOO_COPIES / "ssd_mobilenet_v2_320x320_coco17_tpu-8.config"
  r = _od_guard(
    venv, "check", "--static", "--json", "--pipeline_config_path", str(config), cwd=tmp_path
  )
  assert r.returncode == 1, r.stderr
  report = json.loads(r.stdout)
  assert report["findings"][0]["code"] == "placeholder_path"
  assert report["config"]["feature_extractor_type"] == "ssd_mobilenet_v2_keras"
  assert report["not_checked"][0].startswith("field names and values outside those the preflight")


@needs_realworld
def test_static_check_of_a_users_fine_tune_from_the_wheel(venv, tmp_path):
  r = _od_guard(
    venv,
    "check",
    "--static",
    "--pipeline_config_path",
    str(SIGN_LANGUAGE / "pipeline.config"),
    "--checkpoint",
    str(SIGN_LANGUAGE / "checkpoint"),
    "--json",
    cwd=tmp_path,
  )
  report = json.loads(r.stdout)
  # The user's own input paths are not here: whatever those findings say, the
  # checkpoint fits the config.
  assert r.returncode in (0, 1), r.stderr
  assert report["fingerprint"]["description"] == "SSD MobileNet v2 FPNLite"
  assert report["fingerprint"]["num_classes"] == report["config"]["num_classes"] == 10
  codes = {f["code"] for f in report["findings"]}
  assert "data_shard_missing" in codes
  assert not codes & {"checkpoint_type_mismatch", "feature_extractor_mismatch", "neck_mismatch"}


if __name__ == "__main__":
  sys.exit(pytest.main([__file__, "-q"]))
