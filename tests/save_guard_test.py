"""Naming rules at save time: plain saves, CheckpointManager, Keras, the OD API."""

from __future__ import annotations

import os

import numpy as np
import pytest

from od_guard.naming import rules as naming_rules
from od_guard.naming import save_guard

from conftest import keras3_available

ODAPI = naming_rules.preset("odapi")


def _root(tf, **scopes):
  root = tf.Module()
  for name, shape in scopes.items():
    scope = tf.Module()
    scope.kernel = tf.Variable(tf.random.normal(shape))
    setattr(root, name, scope)
  return root


def test_error_mode_quarantines_and_loses_nothing(tf, tmp_path):
  model = _root(tf, CustomExtractor=[3, 3], _box_predictor=[2])
  ckpt = tf.train.Checkpoint(model=model)
  with pytest.raises(save_guard.NamingViolationError) as e:
    save_guard.save(ckpt, str(tmp_path / "ckpt"), ODAPI, mode="error")
  quarantined = str(tmp_path / "ckpt-1.quarantined")
  assert e.value.quarantined == quarantined
  assert "[allowed: matches none of the allowed patterns" in e.value.what
  assert "model/CustomExtractor/kernel" in e.value.what
  assert not os.path.exists(tmp_path / "ckpt-1.index")
  assert not os.path.exists(tmp_path / "checkpoint")  # no state pointing at it
  reader = tf.train.load_checkpoint(quarantined)  # intact
  np.testing.assert_array_equal(
    reader.get_tensor("model/CustomExtractor/kernel/.ATTRIBUTES/VARIABLE_VALUE"),
    model.CustomExtractor.kernel.numpy(),
  )


def test_warn_mode_keeps_the_checkpoint_and_logs_to_tensorboard(tf, tmp_path):
  ckpt = tf.train.Checkpoint(model=_root(tf, CustomExtractor=[3]))
  path = ckpt.save(str(tmp_path / "ckpt"))
  violations = save_guard.check_saved(
    path, ODAPI, mode="warn", log_dir=str(tmp_path / "tb"), step=7
  )
  assert [v.path for v in violations] == ["model/CustomExtractor/kernel"]
  assert os.path.exists(path + ".index")
  from tensorboard.backend.event_processing import event_accumulator

  acc = event_accumulator.EventAccumulator(str(tmp_path / "tb"))
  acc.Reload()
  assert {"od_guard/naming/violations", "od_guard/naming/report"} <= set(acc.Tags()["tensors"])
  assert acc.Tensors("od_guard/naming/violations")[0].step == 7


def test_checkpoint_manager_drops_the_quarantined_from_its_state(tf, tmp_path):
  root = _root(tf, _feature_extractor=[2])
  manager = save_guard.guard_manager(
    tf.train.CheckpointManager(tf.train.Checkpoint(model=root), str(tmp_path), max_to_keep=5),
    ODAPI,
    mode="error",
  )
  first = manager.save()
  root.CustomExtractor = tf.Module()
  root.CustomExtractor.kernel = tf.Variable([1.0])
  with pytest.raises(save_guard.NamingViolationError):
    manager.save()
  assert tf.train.latest_checkpoint(str(tmp_path)) == first
  assert "ckpt-2" not in (tmp_path / "checkpoint").read_text()
  assert os.path.exists(str(tmp_path / "ckpt-2.quarantined.index"))


@pytest.fixture(params=["keras3", "tf_keras"])
def keras_guard(request):
  from od_guard.keras import naming_callbacks

  if request.param == "keras3":
    if not keras3_available():
      pytest.skip("Keras 3 is the modern environment's")
    import keras

    return keras, naming_callbacks.NamingGuard, ".weights.h5"
  import tf_keras

  return tf_keras, naming_callbacks.TfKerasNamingGuard, ".h5"


def test_keras_model_checkpoint_with_auto_named_layers_is_stopped(keras_guard, tmp_path):
  keras, Guard, suffix = keras_guard
  model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.Dense(2)])
  model.compile(optimizer="sgd", loss="mse")
  x, y = np.zeros((4, 4), "float32"), np.zeros((4, 2), "float32")
  saver = keras.callbacks.ModelCheckpoint(
    str(tmp_path / f"e{{epoch}}{suffix}"), save_weights_only=True
  )
  guard = Guard(str(tmp_path), preset="keras", mode="error")
  with pytest.raises(save_guard.NamingViolationError) as e:
    model.fit(x, y, epochs=3, verbose=0, callbacks=[saver, guard])
  assert "[forbidden: matches forbidden pattern" in e.value.what
  assert os.path.exists(e.value.quarantined) and e.value.quarantined.startswith(
    str(tmp_path / "e1.quarantined")
  )
  assert not os.path.exists(tmp_path / f"e2{suffix}")  # stopped after the first save


_CUSTOM_EXTRACTOR_RULES = """
extends = ["keras"]
[rules]
forbidden = ["(^|/)CustomExtractor(/|$)"]
"""


def _fit_with_backup_and_guard(tmp_path, mode, epochs=2, **guard_kwargs):
  """A tf-keras model whose attribute `CustomExtractor` breaks the rules file,
  trained with BackupAndRestore (which saves `backup/chief/ckpt-<epoch>` at each
  epoch's end and deletes the backup when training ends) and the guard after it."""
  import tf_keras as keras

  from od_guard.keras import naming_callbacks

  class Net(keras.Model):
    def __init__(self):
      super().__init__()
      self.CustomExtractor = keras.layers.Dense(3)
      self.head = keras.layers.Dense(2)

    def call(self, x):
      return self.head(self.CustomExtractor(x))

  rules = tmp_path / "rules.toml"
  rules.write_text(_CUSTOM_EXTRACTOR_RULES)
  model = Net()
  model.compile(optimizer="sgd", loss="mse")
  backup = str(tmp_path / "backup")
  guard = naming_callbacks.TfKerasNamingGuard(backup, rules=str(rules), mode=mode, **guard_kwargs)

  def fit():
    model.fit(
      np.zeros((4, 4), "float32"),
      np.zeros((4, 2), "float32"),
      epochs=epochs,
      verbose=0,
      callbacks=[keras.callbacks.BackupAndRestore(backup), guard],
    )

  return model, guard, fit


def test_keras_backup_and_restore_saves_are_checked_in_warn_mode(tmp_path, caplog):
  _, guard, fit = _fit_with_backup_and_guard(tmp_path, "warn", log_dir=str(tmp_path / "tb"))
  with caplog.at_level("WARNING", logger="od_guard"):
    fit()  # warn mode: training runs to the end
  chief = tmp_path / "backup" / "chief"
  assert guard.checked == [str(chief / "ckpt-1"), str(chief / "ckpt-2")]
  warned = [r.getMessage() for r in caplog.records if r.name == "od_guard"]
  assert warned == [
    f"od_guard: {chief / f'ckpt-{n}'} breaks the naming rules {str(tmp_path / 'rules.toml')!r}: "
    "2 violation(s), e.g. model/CustomExtractor/bias (matches forbidden pattern "
    "'(^|/)CustomExtractor(/|$)')"
    for n in (1, 2)
  ]
  from tensorboard.backend.event_processing import event_accumulator

  acc = event_accumulator.EventAccumulator(str(tmp_path / "tb"))
  acc.Reload()
  assert [e.step for e in acc.Tensors("od_guard/naming/violations")] == [1, 2]


def test_keras_backup_and_restore_save_is_quarantined_in_error_mode(tf, tmp_path):
  model, guard, fit = _fit_with_backup_and_guard(tmp_path, "error", epochs=3)
  with pytest.raises(save_guard.NamingViolationError) as e:
    fit()
  chief = tmp_path / "backup" / "chief"
  assert guard.checked == [str(chief / "ckpt-1")]  # stopped at the first epoch's end
  assert [(v.path, v.rule) for v in e.value.violations] == [
    ("model/CustomExtractor/bias", "forbidden"),
    ("model/CustomExtractor/kernel", "forbidden"),
  ]
  assert "[forbidden: matches forbidden pattern '(^|/)CustomExtractor(/|$)']" in e.value.what
  assert e.value.quarantined == str(chief / "ckpt-1.quarantined")
  assert sorted(os.listdir(chief)) == [
    "ckpt-1.quarantined.data-00000-of-00001",
    "ckpt-1.quarantined.index",
  ]
  # The state file named only ckpt-1: it is gone, so a resume starts afresh
  # instead of restoring the quarantined checkpoint.
  assert tf.train.latest_checkpoint(str(chief)) is None
  np.testing.assert_array_equal(
    tf.train.load_checkpoint(e.value.quarantined).get_tensor(
      "model/CustomExtractor/kernel/.ATTRIBUTES/VARIABLE_VALUE"
    ),
    model.CustomExtractor.kernel.numpy(),
  )


@pytest.mark.odapi
def test_renamed_scope_is_caught_at_save_time_then_repaired(odapi_world, tf, tmp_path):
  """The issue's round trip: caught at save time (error mode, quarantined, nothing
  lost) -> `od-guard check` proposes the map -> `od-guard remap` -> the OD API
  model restores with assert_consumed(), values equal to the originals."""
  import json

  from od_guard.odapi import model as odapi_model

  from conftest import run_cli

  model = odapi_model.build(odapi_world.config())
  renamed = tf.train.Checkpoint(
    model=tf.train.Checkpoint(
      CustomExtractor=model._feature_extractor, _box_predictor=model._box_predictor
    )
  )
  with pytest.raises(save_guard.NamingViolationError) as e:
    save_guard.save(renamed, str(tmp_path / "custom" / "ckpt"), ODAPI, mode="error")
  quarantined = e.value.quarantined
  config = odapi_world.write_config("savetime", checkpoint=quarantined)
  r = run_cli("check", "--json", "--pipeline_config_path", config)
  report = json.loads(r.stdout)
  assert r.returncode == 1 and "renamed_scopes" in [f["code"] for f in report["findings"]]
  (tmp_path / "report.json").write_text(r.stdout)
  fixed = str(tmp_path / "fixed" / "ckpt-1")
  assert (
    run_cli("remap", quarantined, fixed, "--from-report", str(tmp_path / "report.json")).returncode
    == 0
  )
  target = odapi_model.build(odapi_world.config())
  tf.train.Checkpoint(model=target).restore(fixed).assert_consumed()
  for a, b in zip(target._feature_extractor.variables, model._feature_extractor.variables):
    np.testing.assert_array_equal(a.numpy(), b.numpy())
  for a, b in zip(target._box_predictor.variables, model._box_predictor.variables):
    np.testing.assert_array_equal(a.numpy(), b.numpy())


if __name__ == "__main__":
  import sys

  sys.exit(pytest.main([__file__, "-q"]))
