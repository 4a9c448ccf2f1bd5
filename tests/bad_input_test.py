"""Every bad input gets a typed od_guard error and exit code 2, never a traceback."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import h5py
import pytest

from od_guard import errors
from od_guard.checkpoint import inventory

from conftest import ZOO_COPIES
from conftest import cli_in_process
from conftest import run_cli


def _assert_clean_failure(r: subprocess.CompletedProcess, error_name: str, *phrases: str):
  assert r.returncode == 2, (r.stdout, r.stderr)
  assert "Traceback" not in r.stderr
  assert r.stderr.startswith(f"od-guard: error: {error_name}: ")
  assert "\nReceived: " in r.stderr and "\nFix: " in r.stderr
  for p in phrases:
    assert p in r.stderr


def test_missing_path(tmp_path):
  r = cli_in_process("inspect", str(tmp_path / "nope" / "ckpt-3"))
  _assert_clean_failure(r, "CheckpointNotFoundError", "the path does not exist")


def test_directory_without_checkpoint(tmp_path):
  (tmp_path / "readme.txt").write_text("hi")
  r = cli_in_process("inspect", str(tmp_path))
  _assert_clean_failure(r, "CheckpointNotFoundError", "holds no checkpoint", "readme.txt")


def test_truncated_index(tmp_path, keras_tf_checkpoint):
  data = open(keras_tf_checkpoint + ".index", "rb").read()
  (tmp_path / "ckpt-1.index").write_bytes(data[: len(data) // 2])
  r = cli_in_process("inspect", str(tmp_path / "ckpt-1"))
  _assert_clean_failure(r, "CorruptCheckpointError", "is damaged", "truncated")


def test_index_with_damaged_block(tmp_path, keras_tf_checkpoint):
  data = bytearray(open(keras_tf_checkpoint + ".index", "rb").read())
  data[0:64] = b"\xff" * 64  # the first data block; the footer still points at it
  (tmp_path / "ckpt-1.index").write_bytes(bytes(data))
  with pytest.raises(errors.CorruptCheckpointError):
    inventory.read_inventory(str(tmp_path / "ckpt-1"))


def test_garbage_file(tmp_path):
  (tmp_path / "weights.bin").write_bytes(os.urandom(300))
  r = cli_in_process("inspect", str(tmp_path / "weights.bin"))
  _assert_clean_failure(r, "NotACheckpointError", "is not a checkpoint")


def test_garbage_index(tmp_path):
  (tmp_path / "ckpt-1.index").write_bytes(os.urandom(300))
  r = cli_in_process("inspect", str(tmp_path / "ckpt-1.index"))
  _assert_clean_failure(r, "CorruptCheckpointError", "table magic number")


def test_empty_file(tmp_path):
  (tmp_path / "model.ckpt").write_bytes(b"")
  r = cli_in_process("inspect", str(tmp_path / "model.ckpt"))
  _assert_clean_failure(r, "NotACheckpointError", "empty file")


def test_empty_index(tmp_path):
  (tmp_path / "ckpt-1.index").write_bytes(b"")
  r = cli_in_process("inspect", str(tmp_path / "ckpt-1"))
  _assert_clean_failure(r, "NotACheckpointError", "is empty")


def test_unreadable_file(tmp_path, keras_tf_checkpoint):
  shutil.copy(keras_tf_checkpoint + ".index", tmp_path / "ckpt-1.index")
  os.chmod(tmp_path / "ckpt-1.index", 0)
  prefix = []
  if os.geteuid() == 0:
    # Root reads anything; without the DAC-override capabilities it cannot.
    setpriv = shutil.which("setpriv")
    if setpriv is None:
      pytest.fail("running as root needs util-linux's setpriv to drop CAP_DAC_OVERRIDE")
    caps = "-dac_override,-dac_read_search"
    prefix = [setpriv, f"--inh-caps={caps}", f"--bounding-set={caps}"]
  r = run_cli("inspect", str(tmp_path / "ckpt-1"), launcher=prefix)
  _assert_clean_failure(r, "UnreadableFileError", "Cannot read", "Permission denied", "chmod a+r")


def test_named_pipe_does_not_hang(tmp_path):
  os.mkfifo(tmp_path / "ckpt-1.index")
  r = cli_in_process("inspect", str(tmp_path / "ckpt-1"))
  _assert_clean_failure(r, "UnreadableFileError", "named pipe")


def test_hdf5_that_is_not_keras_weights(tmp_path):
  with h5py.File(tmp_path / "data.h5", "w") as f:
    f.create_dataset("images", data=[1, 2, 3])
  r = cli_in_process("inspect", str(tmp_path / "data.h5"))
  _assert_clean_failure(
    r, "NotACheckpointError", "is an HDF5 file, but not Keras weights", "images"
  )


def test_truncated_hdf5(tmp_path, keras2_h5):
  data = open(keras2_h5, "rb").read()
  (tmp_path / "weights.h5").write_bytes(data[: len(data) // 3])
  r = cli_in_process("inspect", str(tmp_path / "weights.h5"))
  _assert_clean_failure(r, "CorruptCheckpointError", "cannot be read as a Keras weights file")


def test_pipeline_config_passed_as_checkpoint():
  r = cli_in_process("inspect", str(ZOO_COPIES / "ssd_mobilenet_v2_320x320_coco17_tpu-8.config"))
  _assert_clean_failure(r, "NotACheckpointError", "is a pipeline config", "--pipeline_config_path")


def test_zip_that_is_not_a_keras_archive(tmp_path):
  import zipfile

  with zipfile.ZipFile(tmp_path / "model.keras", "w") as z:
    z.writestr("notes.txt", "hello")
  r = cli_in_process("inspect", str(tmp_path / "model.keras"))
  _assert_clean_failure(r, "NotACheckpointError", "not a Keras '.keras' file")


def test_bad_depth_is_a_usage_error(keras_tf_checkpoint):
  r = cli_in_process("inspect", keras_tf_checkpoint, "--depth", "0")
  _assert_clean_failure(r, "UsageError", "--depth must be a whole number >= 1")


def test_json_mode_prints_the_error_as_json(tmp_path):
  import json

  r = cli_in_process("inspect", str(tmp_path / "missing"), "--json")
  assert r.returncode == 2
  d = json.loads(r.stdout)
  assert d["error"] == "CheckpointNotFoundError" and d["received"].endswith("missing")


def test_input_files_are_never_modified(keras_tf_checkpoint):
  directory = os.path.dirname(keras_tf_checkpoint)
  before = {n: os.stat(os.path.join(directory, n)).st_mtime_ns for n in os.listdir(directory)}
  assert cli_in_process("inspect", directory).returncode == 0
  after = {n: os.stat(os.path.join(directory, n)).st_mtime_ns for n in os.listdir(directory)}
  assert before == after


if __name__ == "__main__":
  import sys

  sys.exit(pytest.main([__file__, "-q"]))
