"""`od-guard verify` and `checkpoint.verify`: every tensor of checkpoints that
TensorFlow wrote, then damaged on purpose (a flipped byte, a truncated shard)
or saved poisoned (NaN in a kernel, NaN only in an optimizer slot, a zero
moving variance)."""

from __future__ import annotations

import json
import math
import pathlib
import shutil

import pytest

from od_guard.checkpoint import tensor_bundle
from od_guard.checkpoint import verify
from od_guard.restore import findings as findings_lib
from od_guard.restore import value_health

from conftest import fit_tf_keras_stem_model
from conftest import run_cli

KERNEL = "model/layer_with_weights-0/kernel"


@pytest.fixture(scope="module")
def saved(tmp_path_factory, tf) -> dict[str, str]:
  """name -> prefix: 'good', 'nan_kernel', 'nan_slot', 'zero_variance', all
  saved by tf.train.Checkpoint from one tf-keras model with Adam slots."""
  import numpy as np

  root = tmp_path_factory.mktemp("verify")
  rng = np.random.default_rng(0)
  model = fit_tf_keras_stem_model(
    head_name="logits", images=rng.normal(size=(4, 8, 8, 3)), targets=rng.normal(size=(4, 3))
  )
  ckpt = tf.train.Checkpoint(model=model, optimizer=model.optimizer)
  out = {"good": ckpt.save(str(root / "good" / "ckpt"))}

  def poisoned(name: str, var, value) -> None:
    before = var.numpy()
    var.assign(value)
    out[name] = ckpt.save(str(root / name / "ckpt"))
    var.assign(before)

  kernel = model.get_layer("stem_conv").kernel
  value = kernel.numpy()
  value[0, 0, 0, 0] = np.nan
  value[1, 1, 1, 1] = np.inf
  poisoned("nan_kernel", kernel, value)
  slot = next(v for v in model.optimizer.variables if "/m/" in v.name and "stem_conv" in v.name)
  poisoned("nan_slot", slot, np.full(slot.shape, np.nan, np.float32))
  variance = model.get_layer("stem_bn").moving_variance
  poisoned("zero_variance", variance, np.zeros(variance.shape, np.float32))
  return out


def _copy(prefix: str, directory: pathlib.Path) -> str:
  src = pathlib.Path(prefix)
  for f in src.parent.glob(src.name + ".*"):
    shutil.copy(f, directory / f.name)
  return str(directory / src.name)


def _entry(prefix: str, path: str) -> tensor_bundle.BundleEntry:
  key = next(t.key for t in verify.verify(prefix).tensors if t.path == path)
  return next(e for e in tensor_bundle.read_index(prefix + ".index").entries if e.key == key)


def _codes(found) -> dict[str, str]:
  return {f.code: f.severity for f in found if f.severity != findings_lib.INFO}


def test_a_good_checkpoint_is_healthy_and_every_crc_matches(saved):
  report = verify.verify(saved["good"])
  assert report.healthy
  assert {t.status for t in report.tensors} == {verify.OK}
  assert _codes(value_health.diagnose(report)) == {}
  entries = tensor_bundle.read_index(saved["good"] + ".index").entries
  assert {t.key for t in report.tensors} == {e.key for e in entries}


def test_values_agree_with_tensorflows_reader(saved, tf):
  import numpy as np

  reader = tf.train.load_checkpoint(saved["nan_kernel"])
  for t in verify.verify(saved["nan_kernel"]).tensors:
    if t.dtype not in ("float32", "int64"):
      continue
    value = np.asarray(reader.get_tensor(t.key), dtype=np.float64)
    finite = value[np.isfinite(value)]
    assert (t.nan, t.inf) == (int(np.isnan(value).sum()), int(np.isinf(value).sum())), t.key
    assert t.max_abs == (float(np.abs(finite).max()) if finite.size else None), t.key


def test_small_chunks_give_the_same_report(saved):
  whole = verify.verify(saved["nan_kernel"])
  chunked = verify.verify(saved["nan_kernel"], chunk_bytes=16)
  assert chunked.tensors == whole.tensors


def test_keys_restrict_the_scan(saved):
  key = _entry(saved["good"], KERNEL).key
  report = verify.verify(saved["good"], keys={key})
  assert [t.key for t in report.tensors] == [key]


@pytest.fixture(params=["default", "google"])
def crc_backend(request, monkeypatch) -> str:
  """Each test runs with the CRC32C od_guard picks (`crc32c` where installed)
  and with google-crc32c forced (what a default install uses)."""
  if request.param == "google":
    monkeypatch.setenv(verify.CRC_BACKEND_ENV, "google")
  else:
    monkeypatch.delenv(verify.CRC_BACKEND_ENV, raising=False)
  return verify.crc_backend()[1]


def test_both_crc_backends_give_the_same_report(saved, monkeypatch):
  monkeypatch.setenv(verify.CRC_BACKEND_ENV, "google")
  assert verify.crc_backend()[1] == "google-crc32c"
  google = verify.verify(saved["nan_kernel"])
  monkeypatch.delenv(verify.CRC_BACKEND_ENV)
  picked = verify.verify(saved["nan_kernel"])
  assert picked.tensors == google.tensors
  assert picked.bytes_read == google.bytes_read


def test_the_read_ahead_thread_stops_when_the_checks_stop(saved):
  """A scan abandoned after its first chunk (an exception in the checks)
  leaves no reading thread behind."""
  import threading

  e = _entry(saved["good"], KERNEL)
  shard = tensor_bundle.shard_path(saved["good"], e.shard_id, 1)
  with open(shard, "rb") as f:
    reader = verify._ReadAhead(f, [(e.offset, e.size, "float32")] * 1000, 16, shard)
    chunk, end = reader.next()
    assert len(chunk) == 16 and end is None
    reader.close()
  assert not any(t.name == "od_guard-verify-read" for t in threading.enumerate())


def test_a_read_error_on_the_reading_thread_is_a_typed_error(saved):
  class FailingFile:
    def seek(self, offset):
      pass

    def read(self, n):
      raise OSError(5, "Input/output error")

  reader = verify._ReadAhead(FailingFile(), [(0, 64, "float32")], 16, "shard-x")
  with pytest.raises(verify.errors.UnreadableFileError) as e:
    reader.next()
  reader.close()
  assert "Input/output error" in e.value.what and e.value.received == "shard-x"


def test_a_flipped_byte_in_a_kernel_is_a_crc_mismatch(saved, tmp_path, crc_backend):
  prefix = _copy(saved["good"], tmp_path)
  e = _entry(prefix, KERNEL)
  shard = tensor_bundle.shard_path(prefix, e.shard_id, 1)
  data = bytearray(pathlib.Path(shard).read_bytes())
  data[e.offset + e.size // 2] ^= 0x01
  pathlib.Path(shard).write_bytes(bytes(data))
  report = verify.verify(prefix)
  assert [(t.key, t.status) for t in report.damaged()] == [(e.key, verify.CRC_MISMATCH)]
  assert _codes(value_health.diagnose(report)) == {value_health.CORRUPT: findings_lib.ERROR}


def test_a_truncated_shard_names_every_tensor_past_its_end(saved, tmp_path):
  prefix = _copy(saved["good"], tmp_path)
  shard = pathlib.Path(tensor_bundle.shard_path(prefix, 0, 1))
  size = shard.stat().st_size
  with open(shard, "r+b") as f:
    f.truncate(size // 2)
  entries = tensor_bundle.read_index(prefix + ".index").entries
  past = {e.key for e in entries if e.offset + e.size > size // 2 and e.size}
  report = verify.verify(prefix)
  assert {t.key for t in report.damaged()} == past
  assert {t.status for t in report.damaged()} == {verify.TRUNCATED}
  assert _codes(value_health.diagnose(report))[value_health.CORRUPT] == findings_lib.ERROR


def test_nan_in_a_kernel_is_an_error(saved):
  report = verify.verify(saved["nan_kernel"])
  (bad,) = report.unhealthy()
  assert (bad.path, bad.nan, bad.inf) == (KERNEL, 1, 1)
  assert _codes(value_health.diagnose(report)) == {
    value_health.NAN_INF_RESTORED: findings_lib.ERROR
  }


def test_nan_only_in_an_optimizer_slot_is_a_warning(saved):
  report = verify.verify(saved["nan_slot"])
  assert {t.kind for t in report.unhealthy()} == {"optimizer_slot"}
  assert report.summary()["optimizer_slot"]["nan"] == math.prod(report.unhealthy()[0].shape)
  assert _codes(value_health.diagnose(report)) == {
    value_health.NAN_INF_UNRESTORED: findings_lib.WARNING
  }


def test_nan_in_a_value_the_restore_skips_is_a_warning(saved):
  report = verify.verify(saved["nan_kernel"])
  restored = {t.key for t in report.tensors if "layer_with_weights-2" in t.key}
  assert _codes(value_health.diagnose(report, restored=restored)) == {
    value_health.NAN_INF_UNRESTORED: findings_lib.WARNING
  }


def test_a_zero_moving_variance_is_found(saved):
  report = verify.verify(saved["zero_variance"])
  (bad,) = report.unhealthy()
  assert bad.path == "model/layer_with_weights-1/moving_variance" and bad.all_zero
  assert _codes(value_health.diagnose(report)) == {
    value_health.NONPOSITIVE_VARIANCE: findings_lib.WARNING
  }


@pytest.mark.parametrize(
  "name,code,rc",
  [
    ("good", None, 0),
    ("nan_kernel", value_health.NAN_INF_RESTORED, 1),
    ("nan_slot", value_health.NAN_INF_UNRESTORED, 1),
    ("zero_variance", value_health.NONPOSITIVE_VARIANCE, 1),
  ],
)
def test_the_cli_exit_code_and_json(saved, name, code, rc):
  r = run_cli("verify", saved[name], "--json", check_tf=True)
  assert r.returncode == rc, r.stderr
  assert r.stderr.strip().splitlines()[-1] == "TF_IMPORTED=False"
  out = json.loads(r.stdout)
  assert out["schema"] == verify.SCHEMA
  assert out["healthy"] is (rc == 0)
  codes = {f["code"] for f in out["findings"] if f["severity"] != "info"}
  assert codes == ({code} if code else set())


def test_the_cli_text_names_the_damaged_tensor(saved, tmp_path):
  prefix = _copy(saved["good"], tmp_path)
  e = _entry(prefix, KERNEL)
  shard = pathlib.Path(tensor_bundle.shard_path(prefix, 0, 1))
  data = bytearray(shard.read_bytes())
  data[e.offset] ^= 0xFF
  shard.write_bytes(bytes(data))
  r = run_cli("verify", prefix)
  assert r.returncode == 1, r.stderr
  assert f"  {KERNEL}: crc_mismatch: stored CRC32C" in r.stdout
  assert "(checkpoint_value_corrupt)" in r.stdout


def test_the_cli_writes_tensorboard(saved, tmp_path):
  r = run_cli("verify", saved["nan_kernel"], "--tensorboard_dir", str(tmp_path / "tb"))
  assert r.returncode == 1, r.stderr
  assert list((tmp_path / "tb").glob("events.out.tfevents.*"))


def test_a_missing_checkpoint_is_bad_input(tmp_path):
  r = run_cli("verify", str(tmp_path / "nothing" / "ckpt-1"))
  assert r.returncode == 2
  assert "od-guard: error:" in r.stderr
