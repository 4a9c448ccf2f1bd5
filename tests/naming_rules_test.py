"""`od_guard.naming.rules`: presets, `merge` (lists extend, scalars override) and
`load` (presets, a TOML file and its `extends`); every mistake is a RulesError."""

from __future__ import annotations

import re
import tomllib

import pytest

from od_guard import errors
from od_guard.naming import rules as naming_rules

from conftest import raises_exactly

ODAPI = naming_rules.preset("odapi")
KERAS = naming_rules.preset("keras")
DEFAULT_EXEMPT = ("optimizer_slot", "optimizer_state", "bookkeeping")


def _write(tmp_path, text: str) -> str:
  path = tmp_path / "rules.toml"
  path.write_text(text)
  return str(path)


# --- preset ------------------------------------------------------------------


def test_presets():
  assert (ODAPI.name, ODAPI.charset, ODAPI.max_depth, ODAPI.forbidden) == (
    "odapi",
    r"A-Za-z0-9_.\-",
    24,
    (),
  )
  assert r"^model/_feature_extractor(/|$)" in ODAPI.allowed
  assert (KERAS.name, KERAS.allowed, len(KERAS.forbidden)) == ("keras", (), 1)
  assert re.search(KERAS.forbidden[0], "model/dense_3/kernel")
  assert not re.search(KERAS.forbidden[0], "model/dense/kernel")  # only numbered names move
  assert ODAPI.exempt_kinds == KERAS.exempt_kinds == DEFAULT_EXEMPT


def test_unknown_preset():
  expected = naming_rules.RulesError(
    "Unknown naming preset 'tf1'.", received="'tf1'", fix="Use one of: odapi, keras."
  )
  raises_exactly(expected, naming_rules.preset, "tf1")


# --- merge ---------------------------------------------------------------------


def test_merge_lists_extend_the_base():
  merged = naming_rules.merge(
    ODAPI, {"allowed": ["^model/extra/"], "forbidden": ["CustomExtractor"]}, "mine"
  )
  assert merged.name == "mine"
  assert merged.allowed == (*ODAPI.allowed, "^model/extra/")
  assert merged.forbidden == ("CustomExtractor",)
  assert (merged.charset, merged.max_depth, merged.exempt_kinds) == (
    ODAPI.charset,
    ODAPI.max_depth,
    ODAPI.exempt_kinds,
  )
  assert naming_rules.preset("odapi") == ODAPI and "^model/extra/" not in ODAPI.allowed


def test_merge_keeps_one_of_each_list_entry_in_order():
  merged = naming_rules.merge(
    ODAPI, {"allowed": [ODAPI.allowed[1], "^x/"], "exempt_kinds": ["bookkeeping"]}, "mine"
  )
  assert merged.allowed == (*ODAPI.allowed, "^x/")
  assert merged.exempt_kinds == DEFAULT_EXEMPT


def test_merge_scalars_override():
  merged = naming_rules.merge(ODAPI, {"max_depth": 4, "charset": "a-z"}, "mine")
  assert (merged.max_depth, merged.charset, merged.allowed) == (4, "a-z", ODAPI.allowed)


@pytest.mark.parametrize("key", ["forbiden", "name"])
def test_merge_unknown_rule(key):
  expected = naming_rules.RulesError(
    f"Unknown rule(s) [{key!r}] in mine.",
    received=key,
    fix="Rules are: allowed, charset, exempt_kinds, forbidden, max_depth, required_roots.",
  )
  raises_exactly(expected, naming_rules.merge, ODAPI, {key: ["x"], "allowed": []}, "mine")


@pytest.mark.parametrize("value", ["^model/", ["^model/", 3]])
def test_merge_list_rule_needs_a_list_of_strings(value):
  expected = naming_rules.RulesError(
    "Rule 'allowed' in mine must be a list of strings.",
    received=repr(value),
    fix='Write e.g. allowed = ["..."]',
  )
  raises_exactly(expected, naming_rules.merge, ODAPI, {"allowed": value}, "mine")


@pytest.mark.parametrize("key", ["allowed", "forbidden"])
def test_merge_bad_regex(key):
  with pytest.raises(naming_rules.RulesError) as e:
    naming_rules.merge(ODAPI, {key: ["(unclosed"]}, "mine")
  assert e.value.what.startswith("A pattern in mine is not a valid regular expression: ")
  assert (e.value.received, e.value.fix) == ("'(unclosed'", "Fix the pattern (Python `re` syntax).")
  assert isinstance(e.value.__cause__, re.error)


# --- load --------------------------------------------------------------------------


def test_load_nothing_is_the_empty_rule_set():
  assert naming_rules.load() == naming_rules.Rules(name="custom", exempt_kinds=DEFAULT_EXEMPT)


def test_load_one_preset_is_that_preset():
  assert naming_rules.load(None, ["odapi"]) == ODAPI


def test_load_presets_chain_in_order():
  both = naming_rules.load(None, ["odapi", "keras"])
  assert both.name == "odapi+keras"
  assert (both.allowed, both.forbidden) == (ODAPI.allowed, KERAS.forbidden)
  assert (both.charset, both.max_depth, both.exempt_kinds) == (r"A-Za-z0-9_.\-", 24, DEFAULT_EXEMPT)


def test_load_file_extends_a_preset(tmp_path):
  path = _write(
    tmp_path, 'extends = ["odapi"]\n[rules]\nallowed = ["^model/legacy_scope/"]\nmax_depth = 2\n'
  )
  rules = naming_rules.load(path)
  assert rules.name == path
  assert rules.allowed == (*ODAPI.allowed, "^model/legacy_scope/")
  assert (rules.max_depth, rules.charset) == (2, ODAPI.charset)


def test_load_merges_extends_then_the_given_presets_then_the_file(tmp_path):
  path = _write(
    tmp_path, 'extends = ["keras"]\n[rules]\nforbidden = ["CustomExtractor"]\ncharset = "a-z_/"\n'
  )
  rules = naming_rules.load(path, ["odapi", "keras"])
  assert rules.allowed == ODAPI.allowed
  assert rules.forbidden == (*KERAS.forbidden, "CustomExtractor")
  assert rules.charset == "a-z_/"


def test_load_file_without_extends(tmp_path):
  path = _write(tmp_path, '[rules]\nrequired_roots = ["model"]\n')
  rules = naming_rules.load(path)
  assert (rules.name, rules.required_roots, rules.allowed, rules.max_depth) == (
    path,
    ("model",),
    (),
    None,
  )


def test_load_unknown_preset_in_extends(tmp_path):
  with pytest.raises(naming_rules.RulesError, match=r"^Unknown naming preset 'tf1'\."):
    naming_rules.load(_write(tmp_path, 'extends = ["tf1"]\n'))


def test_load_missing_file(tmp_path):
  path = str(tmp_path / "nope.toml")
  expected = naming_rules.RulesError(
    f"The rules file {path!r} does not exist.", received=path, fix="Check --rules."
  )
  error = raises_exactly(expected, naming_rules.load, path)
  assert isinstance(error.__cause__, FileNotFoundError)


def test_load_invalid_toml(tmp_path):
  path = _write(tmp_path, "[rules\n")
  with pytest.raises(naming_rules.RulesError) as e:
    naming_rules.load(path)
  assert e.value.what.startswith(f"The rules file {path!r} is not valid TOML: ")
  assert isinstance(e.value.__cause__, tomllib.TOMLDecodeError)


def test_rules_errors_are_od_guard_errors_that_exit_2():
  assert issubclass(naming_rules.RulesError, errors.OdGuardError)
  assert naming_rules.RulesError("x").exit_code == 2


if __name__ == "__main__":
  import sys

  sys.exit(pytest.main([__file__, "-q"]))
