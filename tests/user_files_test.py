"""Files a user names (--rules, --from-report, --pipeline_config_path) are read
one way (od_guard/_files.py): regular files only, never blocking on a pipe,
size-capped before reading, decoding errors typed; rules TOML and report JSON
checked against their shape. Exit 2 with a typed message, never a traceback."""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from od_guard import _files
from od_guard import errors
from od_guard.naming import rename_rules
from od_guard.naming import rules as naming_rules
from od_guard.odapi import config

from conftest import ZOO_COPIES
from conftest import run_cli

pytestmark = pytest.mark.plain

NOT_A_CHECKPOINT = "/nonexistent/ckpt-1"  # remap reads --from-report before the source


@pytest.fixture
def fifo(tmp_path):
  path = tmp_path / "pipe"
  os.mkfifo(path)
  return str(path)


def _typed_exit_2(r: subprocess.CompletedProcess, error: str) -> str:
  """The stderr of a run that exited 2 with `error` as what / Received / Fix,
  without a traceback."""
  assert r.returncode == 2, (r.stdout, r.stderr)
  assert "Traceback" not in r.stderr
  assert r.stderr.startswith(f"od-guard: error: {error}: "), r.stderr
  assert "\nReceived: " in r.stderr and "\nFix: " in r.stderr
  return r.stderr


@pytest.mark.parametrize(
  "argv,error",
  [
    (("lint", "/nonexistent", "--rules", "{path}"), "RulesError"),
    (("remap", NOT_A_CHECKPOINT, "/tmp/od_guard_never", "--from-report", "{path}"), "RemapError"),
    (("check", "--static", "--pipeline_config_path", "{path}"), "ConfigError"),
  ],
  ids=["rules", "report", "config"],
)
def test_a_fifo_is_refused_without_blocking(fifo, argv, error):
  start = time.monotonic()
  r = run_cli(*(a.format(path=fifo) for a in argv))
  assert "is a named pipe (FIFO), not a regular file" in _typed_exit_2(r, error)
  assert time.monotonic() - start < 10


@pytest.mark.parametrize(
  "argv,error",
  [
    (("lint", "/nonexistent", "--rules", "{path}"), "RulesError"),
    (("remap", NOT_A_CHECKPOINT, "/tmp/od_guard_never", "--from-report", "{path}"), "RemapError"),
    (("check", "--static", "--pipeline_config_path", "{path}"), "ConfigError"),
  ],
  ids=["rules", "report", "config"],
)
def test_a_directory_is_refused(tmp_path, argv, error):
  r = run_cli(*(a.format(path=tmp_path) for a in argv))
  assert "is a directory, not a regular file" in _typed_exit_2(r, error)


def test_a_device_is_refused():
  with pytest.raises(_files.NotARegularFileError, match="is a device"):
    _files.read_bytes("/dev/zero", what="rules file", flag="--rules", limit=10)


def test_a_symlink_to_a_regular_file_is_read(tmp_path):
  (tmp_path / "real.toml").write_text("[rules]\nmax_depth = 3\n")
  (tmp_path / "link.toml").symlink_to(tmp_path / "real.toml")
  assert naming_rules.load(str(tmp_path / "link.toml")).max_depth == 3


def test_too_large_files_are_refused_before_reading(tmp_path):
  big = tmp_path / "big"
  with open(big, "wb") as f:
    f.truncate(_files.RULES_LIMIT + 1)  # sparse: nothing to read
  with pytest.raises(naming_rules.RulesError) as e:
    naming_rules.load(str(big))
  assert "more than the 4,194,304 bytes od_guard reads for a rules file" in e.value.what
  with pytest.raises(rename_rules.RemapError, match="bytes od_guard reads for a report"):
    f = open(big, "r+b")
    f.truncate(_files.REPORT_LIMIT + 1)
    f.close()
    rename_rules.rules_from_report(str(big))
  with pytest.raises(config.ConfigError, match="bytes od_guard reads for a pipeline config"):
    config.parse(str(big))


def test_a_fifo_swapped_in_after_stat_is_refused(tmp_path, fifo):
  # The fstat check: what is opened must be the regular file that was stat'ed.
  with pytest.raises(_files.NotARegularFileError):
    _files.read_bytes(fifo, what="report", flag="--from-report", limit=10)


@pytest.mark.parametrize(
  "content,phrase",
  [
    (b"\xff\xfe[\x00r\x00", "is not UTF-8 text (it is UTF-16)"),
    (b"[rules]\nallowed = ['\xe9']\n", "is not UTF-8 text (byte 20 is b'\\xe9')"),
    (b"[rules\n", "is not valid TOML"),
    (b"a = " + b"[" * 5000 + b"]" * 5000, "nests values too deeply"),
    (b"extends = 1\n", "'extends' in the rules file"),
    (b"extends = [['odapi']]\n", "must be a preset name or a list of them"),
    (b"rules = 3\n", "'rules' in the rules file"),
    (b"version = 2\n[rules]\n", "Unknown key(s) ['version']"),
    (b"[rules]\nmax_depth = '3'\n", "Received: '3' (a string)"),
    (b"[rules]\nmax_depth = 'x'\n", "must be a whole number"),
    (b"[rules]\nmax_depth = -1\n", "must be a whole number >= 0"),
    (b"[rules]\nmax_depth = 2.5\n", "Received: 2.5 (a float)"),
    (b"[rules]\nallowed = [['a']]\n", "must be a list of strings"),
    (b'[rules]\ncharset = "a-z\\\\"\n', "Rule 'charset' in"),
    (b"[rules]\ncharset = 'a-z]|.*'\n", "the inside of one character class"),
    (b"[rules]\ncharset = 3\n", "Received: 3 (an integer)"),
    (b"[rules]\nforbidden = ['(a)\\1']\n", "backreference"),
    (b"a = 1" + b"0" * 5000 + b"\n", "is not valid TOML"),
  ],
)
def test_bad_rules_files(tmp_path, content, phrase):
  path = tmp_path / "rules.toml"
  path.write_bytes(content)
  with pytest.raises(naming_rules.RulesError) as e:
    naming_rules.load(str(path))
  assert phrase in e.value.format()
  assert e.value.exit_code == 2


def test_extends_may_be_one_preset_name(tmp_path):
  path = tmp_path / "rules.toml"
  path.write_text('extends = "odapi"\n')
  assert naming_rules.load(str(path)).allowed == naming_rules.preset("odapi").allowed


def test_bad_rules_file_through_the_cli(tmp_path):
  path = tmp_path / "rules.toml"
  path.write_text('[rules]\nmax_depth = "3"\n')
  r = run_cli("lint", "/nonexistent", "--rules", str(path))
  stderr = _typed_exit_2(r, "RulesError")
  assert "Rule 'max_depth'" in stderr and "'3' (a string)" in stderr


@pytest.mark.parametrize(
  "content,phrase",
  [
    (b"[1, 2]", "the document is an array, not an object"),
    (b'{"findings": 3}', "findings is a number, not an array"),
    (b'{"findings": ["x"]}', "findings[0] is a string, not an object"),
    (b'{"findings": [{"data": []}]}', "findings[0].data is an array, not an object"),
    (b'{"findings": [{"data": {"renames": [["a", "b"]]}}]}', "renames[0] is an array"),
    (b'{"findings": [{"data": {"renames": [{"old": 1, "new": "b"}]}}]}', "renames[0].old"),
    (b'{"findings": [{"data": {"renames": [{"old": "", "new": "b"}]}}]}', "non-empty string"),
    (b'{"findings": [{"data": {"key_map": {"a": null}}}]}', "key_map['a'] is null"),
    (b'{"findings": [{"data": {"key_map": []}}]}', "key_map is an array"),
    (b'{"findings": []}', "proposes no rename map"),
    (b"[" * 100_000 + b"]" * 100_000, "nests values too deeply"),
    (b"{" * 10, "is not valid JSON"),
    (b"1" * 5000, "is not valid JSON"),
    (b"\xff\xfe{\x00", "is not UTF-8 text (it is UTF-16)"),
    (b"[" + b"{}," * 1_000_001 + b"{}]", "more than 1,000,000 JSON objects and arrays"),
  ],
)
def test_bad_reports(tmp_path, content, phrase):
  path = tmp_path / "report.json"
  path.write_bytes(content)
  with pytest.raises(rename_rules.RemapError) as e:
    rename_rules.rules_from_report(str(path))
  assert phrase in e.value.format()


def test_a_report_with_a_regex_like_scope_is_escaped(tmp_path):
  path = tmp_path / "report.json"
  path.write_text(
    '{"findings": [{"data": {"renames": [{"old": "model/a.(b)/", "new": "model/c\\\\1/"}],'
    ' "key_map": {"x+": "y"}}}]}'
  )
  rules = rename_rules.rules_from_report(str(path))
  assert rename_rules.rename_keys(["model/a.(b)/k", "model/aX(b)/k", "x+", "xx"], rules) == {
    "model/a.(b)/k": "model/c\\1/k",
    "model/aX(b)/k": "model/aX(b)/k",
    "x+": "y",
    "xx": "xx",
  }


@pytest.mark.parametrize(
  "content,phrase",
  [
    (b"\x00\x01\x02\xff", "is not a text file, so it cannot be a pipeline config"),
    (b'model { ssd { num_classes: 1 } }\ntrain_config { fine_tune_checkpoint: "a', "ending quote"),
  ],
)
def test_bad_configs(tmp_path, content, phrase):
  path = tmp_path / "pipeline.config"
  path.write_bytes(content)
  with pytest.raises(config.ConfigError) as e:
    config.read(str(path))
  assert phrase in e.value.format()


def test_a_config_nested_too_deeply(tmp_path):
  from od_guard.odapi import config_schema

  path = tmp_path / "pipeline.config"
  path.write_bytes(b"model { " * 3000)
  with pytest.raises(config.ConfigError, match="nests messages too deeply"):
    config.parse(str(path), route=config_schema.NONE)  # without a schema, no field is unknown


def test_a_long_string_in_a_config_is_read_in_bounded_time(tmp_path):
  text = (ZOO_COPIES / "ssd_mobilenet_v2_320x320_coco17_tpu-8.config").read_text()
  path = tmp_path / "pipeline.config"
  path.write_text(text.replace("PATH_TO_BE_CONFIGURED/", "a" * (2 << 20), 1))
  start = time.monotonic()
  assert len(config.read(str(path)).fine_tune_checkpoint) > 2 << 20
  assert time.monotonic() - start < 10


def test_check_static_tensorboard_dir_imports_no_tensorflow(tmp_path):
  cfg = str(ZOO_COPIES / "ssd_mobilenet_v2_320x320_coco17_tpu-8.config")
  r = run_cli(
    "check",
    "--static",
    "--pipeline_config_path",
    cfg,
    "--tensorboard_dir",
    str(tmp_path / "tb"),
    check_tf=True,
  )
  assert r.returncode in (0, 1), r.stderr
  assert r.stderr.strip().splitlines()[-1] == "TF_IMPORTED=False"
  assert any(n.startswith("events.out.tfevents.") for n in os.listdir(tmp_path / "tb"))


def test_user_file_errors_are_usage_errors():
  for cls in (_files.UserFileError, _files.NotARegularFileError, _files.FileTooLargeError):
    assert issubclass(cls, errors.UsageError) and cls("x").exit_code == 2
