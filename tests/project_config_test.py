"""[tool.od_guard] in pyproject.toml / [tool:od_guard] in setup.cfg: found by
walking up from the checked file, read as user files are, checked key by key,
and applied under the command line's options."""

from __future__ import annotations

import os
import pathlib

import pytest

from od_guard import errors
from od_guard import project_config
from od_guard.restore import policy as policy_lib

from conftest import DATA
from conftest import cli_in_process

pytestmark = pytest.mark.plain

_CONFIG = (
  "model { ssd { num_classes: 2 feature_extractor { type: 'ssd_mobilenet_v2_keras' } } }\n"
  'train_config { fine_tune_checkpoint: "/mnt/training/ssd_mobilenet_v2_320x320_coco17_tpu-8'
  '/checkpoint/ckpt-0" fine_tune_checkpoint_type: "classification" }\n'
)


@pytest.fixture
def project(tmp_path) -> pathlib.Path:
  (tmp_path / "configs" / "a").mkdir(parents=True)
  (tmp_path / "configs" / "a" / "pipeline.config").write_text(_CONFIG)
  return tmp_path


def _write(path: pathlib.Path, text: str) -> None:
  path.write_text(text)


def test_found_walking_up_and_applied(project):
  _write(
    project / "pyproject.toml",
    '[project]\nname = "x"\n[tool.od_guard]\npolicy = "strict"\nmin_backbone_coverage = 0.5\n'
    'min_neck_coverage = 0.25\nignore = ["label_map_num_classes_differ"]\n'
    'select = ["checkpoint_type_mismatch", "label_map_num_classes_differ"]\n'
    'naming_rules = "rules/naming.toml"\nwhere = "repo"\n',
  )
  config = project / "configs" / "a" / "pipeline.config"
  assert project_config.find(config) == str(project / "pyproject.toml")
  got = project_config.discover(config)
  assert got == project_config.ProjectConfig(
    path=str(project / "pyproject.toml"),
    policy="strict",
    min_backbone_coverage=0.5,
    min_neck_coverage=0.25,
    ignore=frozenset({"label_map_num_classes_differ"}),
    select=frozenset({"checkpoint_type_mismatch", "label_map_num_classes_differ"}),
    naming_rules=str(project / "rules" / "naming.toml"),
    where="repo",
  )
  policy = got.to_policy()
  assert (policy.name, policy.min_backbone_coverage, policy.min_neck_coverage) == (
    "strict",
    0.5,
    0.25,
  )
  # The command line wins: --ignore adds, --select replaces, --policy and the threshold win.
  policy = got.to_policy(
    preset="lenient",
    min_backbone_coverage=0.1,
    ignore=frozenset({"tf1_config_field"}),
    select=frozenset({"shape_mismatch"}),
  )
  assert policy.name == "lenient" and policy.min_backbone_coverage == 0.1
  assert policy.ignore == {"label_map_num_classes_differ", "tf1_config_field"}
  assert policy.select == {"shape_mismatch"}


def test_files_without_settings_are_passed_over(project):
  _write(project / "pyproject.toml", '[tool.od_guard]\nwhere = "repo"\n')
  _write(project / "configs" / "pyproject.toml", "[tool.ruff]\nline-length = 100\n")
  _write(project / "configs" / "setup.cfg", "[metadata]\nname = x\n")
  assert project_config.find(project / "configs" / "a") == str(project / "pyproject.toml")


def test_nothing_found_is_the_defaults(tmp_path):
  got = project_config.discover(tmp_path)
  if got.path:  # a project file above the temporary directory: not this test's business
    pytest.skip(f"{got.path} lies above {tmp_path}")
  assert got == project_config.ProjectConfig()
  assert got.to_policy() == policy_lib.preset("default")


def test_setup_cfg(project):
  _write(
    project / "setup.cfg",
    "[metadata]\nname = x\n[tool:od_guard]\npolicy = lenient\nmin_backbone_coverage = 0.5\n"
    "ignore =\n  label_map_num_classes_differ\n  tf1_config_field\nwhere = repo\n",
  )
  got = project_config.discover(project / "configs" / "a" / "pipeline.config")
  assert got.path == str(project / "setup.cfg")
  assert got.policy == "lenient" and got.min_backbone_coverage == 0.5 and got.where == "repo"
  assert got.ignore == {"label_map_num_classes_differ", "tf1_config_field"}


def test_pyproject_wins_over_setup_cfg_in_one_directory(project):
  _write(project / "pyproject.toml", '[tool.od_guard]\nwhere = "training"\n')
  _write(project / "setup.cfg", "[tool:od_guard]\nwhere = repo\n")
  assert project_config.discover(project).where == "training"


@pytest.mark.parametrize(
  ("text", "what"),
  [
    ('[tool.od_guard]\nignor = ["x"]\n', "Unknown key 'ignor' in [tool.od_guard] of {r}. Did you mean 'ignore'?"),
    ('[tool.od_guard]\npolicy = "loose"\n', "[tool.od_guard] policy in {r} must be one of strict, default, lenient."),
    ("[tool.od_guard]\nmin_backbone_coverage = 1.5\n", "[tool.od_guard] min_backbone_coverage in {r} must be a fraction between 0 and 1."),
    ("[tool.od_guard]\nmin_neck_coverage = true\n", "[tool.od_guard] min_neck_coverage in {r} must be a fraction between 0 and 1."),
    ('[tool.od_guard]\nwhere = "ci"\n', "[tool.od_guard] where in {r} must be one of training, repo."),
    ("[tool.od_guard]\nnaming_rules = 3\n", "[tool.od_guard] naming_rules in {r} must be a path (a TOML rules file)."),
    ('[tool.od_guard]\nignore = ["checkpoint_type_mismatc"]\n', "Unknown finding code 'checkpoint_type_mismatc' in [tool.od_guard] ignore of {p}. Did you mean 'checkpoint_type_mismatch'?"),
    ("[tool.od_guard]\nselect = 3\n", "[tool.od_guard] select of {p} must be finding codes: a list of strings or a comma-separated string."),
    ("[tool]\nod_guard = 3\n", "[tool.od_guard] in {r} must be a table."),
  ],
)  # fmt: skip
def test_wrong_settings_are_usage_errors(project, text, what):
  path = project / "pyproject.toml"
  _write(path, text)
  with pytest.raises(errors.UsageError) as e:
    project_config.discover(project / "configs")
  assert e.value.what == what.format(r=repr(str(path)), p=str(path))


@pytest.mark.parametrize(
  ("make", "error", "says"),
  [
    (lambda p: p.write_text("[tool.od_guard\nwhere = 1\n"), project_config.ProjectConfigError, "is not valid TOML"),
    (lambda p: p.write_bytes(b"\xff\xfe[tool]"), project_config.ProjectConfigError, "is not UTF-8 text"),
    (lambda p: p.write_bytes(b"# " + b"x" * (project_config.PROJECT_LIMIT + 1)), project_config.ProjectConfigError, "more than the"),
    (os.mkfifo, project_config.ProjectConfigError, "is a named pipe (FIFO), not a regular file"),
    (lambda p: os.symlink(p, p), project_config.ProjectConfigError, "Too many levels of symbolic links"),
    (lambda p: p.mkdir(), project_config.ProjectConfigError, "is a directory, not a regular file"),
    (lambda p: p.write_text("a = " + "[" * 5000 + "]" * 5000 + "\n"), project_config.ProjectConfigError, "nests values too deeply"),
  ],
  ids=["malformed", "not_utf8", "huge", "fifo", "symlink_loop", "directory", "deep"],
)  # fmt: skip
def test_hostile_project_files_are_typed_errors(project, make, error, says):
  make(project / "pyproject.toml")
  with pytest.raises(error, match="project file") as e:
    project_config.discover(project / "configs" / "a" / "pipeline.config")
  assert says in e.value.what, e.value.what


def test_check_reads_it_and_the_command_line_wins(project, monkeypatch):
  monkeypatch.chdir(project)
  config = "configs/a/pipeline.config"
  _write(project / "pyproject.toml", '[tool.od_guard]\nwhere = "repo"\n')
  r = cli_in_process("check", "--static", "--pipeline_config_path", config)
  assert r.returncode == 1, r.stdout + r.stderr
  assert "(checkpoint_type_mismatch)" in r.stdout
  assert r.stdout.rstrip().endswith(f"settings: [tool.od_guard] of {project / 'pyproject.toml'}")
  _write(
    project / "pyproject.toml",
    '[tool.od_guard]\nwhere = "repo"\nignore = ["checkpoint_type_mismatch"]\n',
  )
  r = cli_in_process("check", "--static", "--pipeline_config_path", config)
  assert r.returncode == 0, r.stdout + r.stderr
  assert r.stdout.startswith("od_guard preflight: PASS  [policy default, static tier]\n")
  assert (
    "ignored: 1 finding(s) kept out of the verdict: checkpoint_type_mismatch (by --ignore); "
    "--verbose lists them\n"
  ) in r.stdout
  r = cli_in_process("check", "--static", "--verbose", "--pipeline_config_path", config)
  assert '[i] fine_tune_checkpoint_type is "classification"' in r.stdout
  assert "(ignored by --ignore)  (checkpoint_type_mismatch)" in r.stdout
  # --isolated: the file is not read; --where training: every path must be here.
  r = cli_in_process("check", "--static", "--isolated", "--pipeline_config_path", config)
  assert r.returncode == 1 and "(checkpoint_not_found)" in r.stdout and "settings:" not in r.stdout
  r = cli_in_process("check", "--static", "--where", "training", "--pipeline_config_path", config)
  assert r.returncode == 1 and "(checkpoint_not_found)" in r.stdout
  r = cli_in_process("check", "--static", "--json", "--pipeline_config_path", config)
  import json

  payload = json.loads(r.stdout)
  assert payload["project_file"] == str(project / "pyproject.toml") and payload["where"] == "repo"
  assert payload["verdict"]["policy"]["ignore"] == ["checkpoint_type_mismatch"]
  ignored = [f for f in payload["findings"] if f["data"].get("ignored_by")]
  assert [(f["code"], f["severity"], f["data"]["severity"]) for f in ignored] == [
    ("checkpoint_type_mismatch", "info", "error")
  ]


def test_an_unknown_code_on_the_command_line(project):
  r = cli_in_process(
    "check", "--static", "--ignore", "tf1_config_field,input_path_mising",
    "--pipeline_config_path", str(project / "configs" / "a" / "pipeline.config"),
  )  # fmt: skip
  assert r.returncode == 2
  assert r.stderr == (
    "od-guard: error: UsageError: Unknown finding code 'input_path_mising' in --ignore. "
    "Did you mean 'input_path_missing'?\nReceived: --ignore input_path_mising\n"
    "Fix: Use 'input_path_missing', or another code of the findings reference "
    "(docs/reference/findings.md; the codes of a report are in `od-guard check --json`).\n"
  )


def test_lint_takes_naming_rules_from_the_project_file(tmp_path):
  (tmp_path / "ckpt").mkdir()
  index = tmp_path / "ckpt" / "ckpt-0.index"
  index.write_bytes(
    (DATA / "zoo_indexes" / "ssd_mobilenet_v2_320x320_coco17_tpu-8" / "ckpt-0.index").read_bytes()
  )
  (tmp_path / "pyproject.toml").write_text('[tool.od_guard]\nnaming_rules = "tools/naming.toml"\n')
  r = cli_in_process("lint", str(index))
  assert r.returncode == 2
  assert f"Fix: Check naming_rules in [tool.od_guard] of {tmp_path / 'pyproject.toml'}." in r.stderr
  (tmp_path / "tools").mkdir()
  (tmp_path / "tools" / "naming.toml").write_text(
    '[rules]\nforbidden = ["^model/_box_predictor/"]\n'
  )
  r = cli_in_process("lint", str(index))
  assert r.returncode == 1, r.stdout + r.stderr
  assert (
    f" under rules {tmp_path / 'tools' / 'naming.toml'}: 324 names checked, 0 exempt, 24 violation(s)"
    in r.stdout
  )
  r = cli_in_process("lint", "--isolated", str(index))
  assert r.returncode == 0 and " under rules odapi: " in r.stdout
