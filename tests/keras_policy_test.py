"""The Keras guard takes --ignore / --select as every integration does: through
its `policy=` argument (Policy.replace(ignore=..., select=...)), judged by
od_guard.restore.decide; the ignored finding stays in the report as a fact."""

from __future__ import annotations

import pytest

from od_guard.keras import guarded_restore
from od_guard.restore import decide
from od_guard.restore import findings
from od_guard.restore import policy as policy_lib


def _saved(tf, keras, tmp_path, head: str):
  model = keras.Sequential(
    [keras.layers.Dense(4, name="features"), keras.layers.Dense(2, name=head)]
  )
  model.build((None, 3))
  return model, tf.train.Checkpoint(model=model).save(str(tmp_path / head / "ckpt"))


@pytest.fixture
def keras_module():
  return pytest.importorskip("tf_keras")


def test_an_ignored_code_does_not_stop_the_keras_guard(tf, keras_module, tmp_path):
  _, prefix = _saved(tf, keras_module, tmp_path, "classifier")
  unbuilt = keras_module.Sequential(
    [keras_module.layers.Dense(4, name="features"), keras_module.layers.Dense(2, name="classifier")]
  )
  with pytest.raises(guarded_restore.RestoreGuardError) as e:
    guarded_restore.restore(unbuilt, prefix, quiet=True)
  assert e.value.report.finding("deferred_restore").severity == findings.ERROR
  policy = policy_lib.preset("default").replace(ignore={"deferred_restore"})
  report = guarded_restore.restore(unbuilt, prefix, policy=policy, quiet=True)
  assert report.verdict.decision != policy_lib.FAIL
  f = report.finding("deferred_restore")
  assert f.severity == findings.INFO and f.data["ignored_by"] == "ignore"
  assert f.title.endswith(decide.IGNORED_TITLE["ignore"])
  assert report.verdict.policy.ignore == {"deferred_restore"}


def test_select_keeps_other_codes_from_the_verdict(tf, keras_module, tmp_path):
  _, prefix = _saved(tf, keras_module, tmp_path, "classifier")
  unbuilt = keras_module.Sequential(
    [keras_module.layers.Dense(4, name="features"), keras_module.layers.Dense(2, name="classifier")]
  )
  policy = policy_lib.preset("default").replace(select={"shape_mismatch"})
  report = guarded_restore.restore(unbuilt, prefix, policy=policy, quiet=True)
  assert report.verdict.decision != policy_lib.FAIL
  assert report.finding("deferred_restore").data["ignored_by"] == "select"
