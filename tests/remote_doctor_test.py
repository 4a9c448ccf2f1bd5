"""`od-guard doctor` on the storage training will use: TensorFlow's own file
systems are local disk, gs:// and ram://; s3:// needs tensorflow-io. The
claim is checked against TensorFlow itself where it is installed."""

from __future__ import annotations

import sys

import pytest

from od_guard.odapi import doctor
from od_guard.restore import findings

from conftest import REPO
from conftest import run_cli

EXAMPLE_CONFIG = REPO / "examples" / "tiny_ssd_mobilenet_v2" / "pipeline.config"


def _storage(report) -> dict[str, doctor.Check]:
  return {c.name: c for c in report.checks if c.name.startswith(("storage", "od_guard "))}


@pytest.mark.plain
def test_s3_fine_tune_checkpoint_and_model_dir_from_the_config(tmp_path):
  config = tmp_path / "pipeline.config"
  config.write_text(
    EXAMPLE_CONFIG.read_text().replace(
      'fine_tune_checkpoint: ""', 'fine_tune_checkpoint: "s3://zoo/ssd/checkpoint/ckpt-0"'
    )
  )
  report = doctor.run(pipeline_config_path=str(config), model_dir="gs://runs/ssd", environ={})
  checks = _storage(report)
  s3 = checks["storage s3://"]
  if doctor._versions()["tensorflow-io"]:
    assert s3.status == findings.WARNING and "import tensorflow_io" in s3.fix
  else:
    assert s3.status == findings.ERROR
    assert "fine_tune_checkpoint" in s3.found and "tensorflow-io" in s3.fix
  assert checks["storage gs://"].status == doctor.OK
  assert "--model_dir" in checks["storage gs://"].found
  assert checks["storage (local paths)"].status == doctor.OK
  assert report.ok == (s3.status != findings.ERROR)
  assert "storage s3://" in doctor.render_text(report)


@pytest.mark.plain
def test_what_tensorflow_io_changes():
  paths = [("fine_tune_checkpoint", "s3://zoo/ckpt-0"), ("--model_dir", "gcs://runs/a")]
  with_io = {"tensorflow": "2.15.1", "tensorflow-io": "0.36.0"}
  checks = {c.name: c for c in doctor.storage_checks(paths, with_io, {"AWS_ENDPOINT_URL": "x"})}
  assert checks["storage s3://"].status == findings.WARNING
  assert "S3_ENDPOINT" in checks["storage s3://"].fix
  assert checks["storage gcs://"].status == findings.ERROR  # TF knows Cloud Storage as gs://
  assert 'Use "gs://"' in checks["storage gcs://"].fix
  old = {"tensorflow": "2.5.0", "tensorflow-io": None}
  assert doctor.storage_checks(paths[:1], old, {})[0].status == doctor.OK  # S3 was built in


@pytest.mark.plain
def test_an_unreadable_config_is_reported_not_raised(tmp_path):
  report = doctor.run(pipeline_config_path=str(tmp_path / "missing.config"), environ={})
  (storage,) = [c for c in report.checks if c.name == "storage" and c.status != doctor.OK]
  assert "does not exist" in storage.found


def test_tensorflow_agrees_it_cannot_read_s3(tf):
  """What the doctor says about s3:// is what TF's gfile does: not implemented,
  unless tensorflow-io is installed (a warning: only once it is imported)."""
  if "tensorflow_io" in sys.modules:
    pytest.skip("an earlier test imported tensorflow_io (DeepMAC does): s3:// is registered here")
  verdict = _storage(doctor.run(paths=["s3://zoo/ckpt-0.index"], environ={}))["storage s3://"]
  with pytest.raises(tf.errors.UnimplementedError, match="'s3' not implemented"):
    tf.io.gfile.exists("s3://zoo/ckpt-0.index")
  if doctor._versions()["tensorflow-io"]:
    assert verdict.status == findings.WARNING and "import tensorflow_io" in verdict.fix
  else:
    assert verdict.status == findings.ERROR


def test_without_s3fs_the_gfile_fallback_says_which_extra(tf):
  """Where s3fs is not installed, s3:// falls back to TF's gfile, which has no
  S3 (without tensorflow-io): a typed error naming the extra to install."""
  import importlib.util

  from od_guard.checkpoint import fileio
  from od_guard.checkpoint import remote

  if importlib.util.find_spec("s3fs") is not None or "tensorflow_io" in sys.modules:
    pytest.skip("s3fs (or tensorflow_io) is present here: s3:// is readable")
  with pytest.raises(remote.StorageUnavailableError) as e:
    fileio.exists("s3://bucket/train/ckpt-3.index")
  assert e.value.fix.startswith("pip install 'od_guard[s3]'")
  assert e.value.received == "s3://bucket/train/ckpt-3.index"


@pytest.mark.plain
def test_a_scheme_nothing_here_reads_is_a_typed_error():
  import importlib.util

  if importlib.util.find_spec("tensorflow") or importlib.util.find_spec("adlfs"):
    pytest.skip("TensorFlow or adlfs is installed here: az:// may be readable")
  r = run_cli("inspect", "az://container/train/ckpt-3", check_tf=True)
  assert r.returncode == 2, r.stderr
  assert "StorageUnavailableError: od_guard cannot read az:// here" in r.stderr
  assert "Received: az://container/train/ckpt-3" in r.stderr and "adlfs" in r.stderr
  assert r.stderr.rstrip().endswith("TF_IMPORTED=False")
