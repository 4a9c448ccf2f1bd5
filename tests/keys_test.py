"""TF2 checkpoint key syntax: escaping, splitting and building keys."""

from __future__ import annotations

from od_guard.checkpoint import keys as checkpoint_keys


def test_unescape_decodes_dots_and_slashes():
  assert checkpoint_keys.unescape("class..head.Slogits") == "class.head/logits"


def test_escape_is_undone_by_unescape():
  for name in ("class.head/logits", "a..b", "./.S", "plain"):
    assert checkpoint_keys.unescape(checkpoint_keys.escape(name)) == name


def test_split_key_gives_decoded_path_and_attribute():
  assert checkpoint_keys.split_key("a/b..c.Sd/.ATTRIBUTES/VARIABLE_VALUE") == (
    ("a", "b.c/d"),
    "VARIABLE_VALUE",
  )


def test_split_key_of_a_name_without_attribute():
  assert checkpoint_keys.split_key("FeatureExtractor/conv/weights") == (
    ("FeatureExtractor", "conv", "weights"),
    "",
  )


def test_checkpoint_key_escapes_each_component():
  assert (
    checkpoint_keys.checkpoint_key("model/_box.predictor/kernel")
    == "model/_box..predictor/kernel/.ATTRIBUTES/VARIABLE_VALUE"
  )


def test_checkpoint_key_and_split_key_round_trip():
  key = checkpoint_keys.checkpoint_key("model/a.b/c")
  path, attribute = checkpoint_keys.split_key(key)
  assert ("/".join(path), attribute) == ("model/a.b/c", checkpoint_keys.VARIABLE_VALUE)
