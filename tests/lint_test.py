"""`od-guard lint` and the naming rules."""

from __future__ import annotations

import json

import pytest

from od_guard.checkpoint import inventory
from od_guard.naming import lint as naming_lint
from od_guard.naming import rules as naming_rules

from conftest import BITEWING
from conftest import SIGN_LANGUAGE
from conftest import needs_realworld
from conftest import run_cli


@needs_realworld
@pytest.mark.parametrize("user", [SIGN_LANGUAGE, BITEWING], ids=["sign_language", "bitewing"])
def test_real_user_checkpoints_pass_the_odapi_preset(user):
  r = run_cli("lint", str(user / "checkpoint"), "--preset", "odapi", "--json", check_tf=True)
  assert r.returncode == 0, r.stdout
  d = json.loads(r.stdout)
  assert (d["schema"], d["passed"], d["violations"]) == ("od_guard.lint/1", True, [])
  assert d["checked"] == len(inventory.read_inventory(str(user / "checkpoint")).variables) - 1
  assert r.stderr.strip().splitlines()[-1] == "TF_IMPORTED=False"


def _saved(tf, tmp_path, **attrs):
  root = tf.Module()
  for name, value in attrs.items():
    child = tf.Module()
    child.kernel = tf.Variable(tf.zeros(value))
    setattr(root, name, child)
  return tf.train.Checkpoint(model=root).save(str(tmp_path / "ckpt"))


def test_a_renamed_scope_breaks_the_odapi_preset(tf, tmp_path):
  prefix = _saved(tf, tmp_path, CustomExtractor=[3, 3], _box_predictor=[2])
  r = run_cli("lint", prefix)
  assert r.returncode == 1
  assert "[allowed: matches none of the allowed patterns (an unexpected scope?)]" in r.stdout
  assert "model/CustomExtractor/kernel" in r.stdout


def test_keras_preset_refuses_auto_numbered_layer_names(tf, tmp_path):
  prefix = _saved(tf, tmp_path, dense_3=[4, 2], head=[2])
  d = json.loads(run_cli("lint", prefix, "--preset", "keras", "--json").stdout)
  assert [(v["path"], v["rule"]) for v in d["violations"]] == [
    ("model/dense_3/kernel", "forbidden")
  ]


def test_rules_file_extends_a_preset(tf, tmp_path):
  prefix = _saved(tf, tmp_path, _feature_extractor=[3], legacy_scope=[2])
  rules = tmp_path / "rules.toml"
  rules.write_text(
    'extends = ["odapi"]\n[rules]\nallowed = ["^model/legacy_scope/"]\nmax_depth = 2\n'
  )
  d = json.loads(run_cli("lint", prefix, "--rules", str(rules), "--json").stdout)
  assert {(v["path"], v["rule"]) for v in d["violations"]} == {
    ("model/_feature_extractor/kernel", "max_depth"),
    ("model/legacy_scope/kernel", "max_depth"),
  }


@pytest.mark.parametrize(
  "text,phrase",
  [
    ("[rules\n", "is not valid TOML"),
    ('[rules]\nforbiden = ["x"]\n', "Unknown rule(s) ['forbiden']"),
    ('[rules]\nforbidden = ["(unclosed"]\n', "is not a valid regular expression"),
    ('[rules]\nallowed = "^model/"\n', "must be a list of strings"),
  ],
)
def test_bad_rules_files_are_clear_errors(tf, tmp_path, text, phrase):
  prefix = _saved(tf, tmp_path, _feature_extractor=[3])
  rules = tmp_path / "rules.toml"
  rules.write_text(text)
  r = run_cli("lint", prefix, "--rules", str(rules))
  assert r.returncode == 2 and "Traceback" not in r.stderr
  assert "RulesError: " in r.stderr and phrase in r.stderr


def test_exempt_kinds_skip_optimizer_and_bookkeeping(keras_tf_checkpoint):
  inv = inventory.read_inventory(keras_tf_checkpoint)
  violations, checked = naming_lint.check(naming_rules.preset("odapi"), inv.variables)
  assert checked == len(inv.of_kind(inventory.MODEL))
  assert {v.rule for v in violations} == {"allowed"}  # a Keras model is not an OD API one


if __name__ == "__main__":
  import sys

  sys.exit(pytest.main([__file__, "-q"]))


def test_several_paths_as_pre_commit_passes_them(tf, tmp_path):
  good = _saved(tf, tmp_path / "good", _feature_extractor=[3])
  bad = _saved(tf, tmp_path / "bad", CustomExtractor=[3])
  r = run_cli("lint", good + ".index", good + ".data-00000-of-00001", bad + ".index", "--json")
  assert r.returncode == 1
  results = json.loads(r.stdout)["results"]
  assert [(d["checkpoint"], d["passed"]) for d in results] == [(good, True), (bad, False)]


def test_keras2_hdf5_tensor_suffixes_are_not_charset_violations(keras2_h5):
  """tf-keras names HDF5 datasets like tensors ('d1/d1/kernel:0'); the ':0' is
  not part of a name the user chose, so it breaks no charset rule."""
  inv = inventory.read_inventory(keras2_h5)
  assert any(v.path.endswith(":0") for v in inv.variables)
  violations, checked = naming_lint.check(naming_rules.preset("keras"), inv.variables)
  assert checked == 4
  assert violations == []
