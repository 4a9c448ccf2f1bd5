"""User patterns (naming rules, remap rules) are compiled once, with RE2, and
matched in time linear in the text: no pattern can hang a save or a lint."""

from __future__ import annotations

import time

import pytest

from od_guard.checkpoint import inventory
from od_guard.naming import lint as naming_lint
from od_guard.naming import rename_rules
from od_guard.naming import rules as naming_rules

pytestmark = pytest.mark.plain


def _variables(*paths: str) -> list[inventory.Variable]:
  return [
    inventory.Variable(
      key=p + "/.ATTRIBUTES/VARIABLE_VALUE",
      attribute="VARIABLE_VALUE",
      nbytes=4,
      path=p,
      shape=(1,),
      dtype="float32",
      kind=inventory.MODEL,
      component="model",
    )
    for p in paths
  ]


@pytest.mark.parametrize("pattern", ["(a+)+$", "(a|a)*$", "(a*)*b", "^(x+x+)+y$", "(.*a){20}"])
def test_catastrophic_patterns_finish_fast_on_a_long_key(pattern):
  rules = naming_rules.merge(naming_rules.Rules(), {"forbidden": [pattern]}, "mine")
  key = "a" * 10_000 + "!"
  start = time.monotonic()
  naming_lint.check(rules, _variables(key, "x" * 10_000))
  rename_rules.rename_keys([key], [rename_rules.Rule(pattern, "b")])
  assert time.monotonic() - start < 1.0


@pytest.mark.parametrize(
  "pattern,feature,advice",
  [
    (r"(a)\1", "a backreference", "write the repeated text out"),
    (r"(?P<n>a)(?P=n)", "a named backreference", "write the repeated text out"),
    ("(?=model)", "lookahead", "RE2 has no lookaround"),
    ("(?!model)", "negative lookahead", "`forbidden`"),
    ("(?<=a)b", "lookbehind", "preceding text"),
    ("(?<!a)b", "negative lookbehind", "`forbidden`"),
    ("(?>a)", "an atomic group", "plain group"),
    ("a*+", "a possessive quantifier", "RE2 never backtracks"),
    ("(a)?(?(1)b|c)", "a conditional", "two patterns"),
    (r"model\Z", r"\Z", r"\z"),
  ],
)
def test_syntax_re2_lacks_is_named_with_its_re2_form(pattern, feature, advice):
  with pytest.raises(naming_rules.RulesError) as e:
    naming_rules.merge(naming_rules.Rules(), {"allowed": [pattern]}, "mine")
  assert e.value.what.startswith(f"A pattern in mine uses {feature}")
  assert "which RE2 (the linear-time engine od_guard matches with) does not support" in e.value.what
  assert advice in e.value.fix and "github.com/google/re2/wiki/Syntax" in e.value.fix


def test_a_pattern_that_is_no_regex_at_all_keeps_pythons_message():
  with pytest.raises(naming_rules.RulesError) as e:
    naming_rules.merge(naming_rules.Rules(), {"forbidden": ["(unclosed"]}, "mine")
  assert e.value.what == (
    "A pattern in mine is not a valid regular expression: missing ), unterminated "
    "subpattern at position 0."
  )


@pytest.mark.parametrize(
  "rule,phrase",
  [
    (r"model/(a)/->model/\2/", "invalid group reference 2"),
    (r"model/(?P<x>a)/->model/\g<y>/", "unknown group name 'y'"),
    ("model/a/->model/b\\", "bad escape (end of pattern)"),
    (r"model/a/->\q", "bad escape \\q"),
    ("model/a/->x\\1", "OLD has no groups"),
  ],
)
def test_the_new_side_is_checked_against_the_old_sides_groups(rule, phrase):
  with pytest.raises(rename_rules.RemapError) as e:
    rename_rules.Rule.parse(rule)
  assert e.value.what.startswith("The rule's NEW part is not a valid replacement")
  assert phrase in e.value.format()


@pytest.mark.parametrize(
  "rule,key,expected",
  [
    (r"model/(\w+)/->m/\1_x/", "model/abc/k", "m/abc_x/k"),
    (r"model/(?P<s>\w+)/->m/\g<s>/", "model/abc/k", "m/abc/k"),
    (r"(model)/->\g<0>\g<1>/", "model/k", "model/model/k"),
    (r"a(b)?c->[\1]", "ac/k", "[]/k"),
    (r"é(.)->\1ü", "éx/k", "xü/k"),
    (r"a->b\\c\n", "a/k", "b\\c\n/k"),
    ("model/x->y", "other/x", None),
  ],
)
def test_rules_rename_as_pythons_re_sub_would(rule, key, expected):
  assert rename_rules.Rule.parse(rule).apply(key) == expected


def test_many_rules_are_matched_together_first_one_wins():
  rules = [rename_rules.Rule(f"model/s{i}/", f"model/t{i}/") for i in range(3000)]
  rules.insert(10, rename_rules.Rule("model/s2", "model/first"))
  keys = [f"model/s{i}/k" for i in range(0, 3000, 7)]
  start = time.monotonic()
  mapping = rename_rules.rename_keys(keys, rules)
  assert time.monotonic() - start < 10
  assert mapping == {
    k: rename_rules.rename(k, rules) for k in keys
  }  # the same as trying each rule in turn
  assert mapping["model/s21/k"] == "model/first1/k"
  assert mapping["model/s14/k"] == "model/t14/k"


def test_many_naming_patterns_compile_once_and_match_together():
  allowed = [f"^model/scope_{i}/" for i in range(50_000)]
  forbidden = [f"(^|/)bad_{i}(/|$)" for i in range(2_000)]
  start = time.monotonic()
  rules = naming_rules.merge(
    naming_rules.Rules(), {"allowed": allowed, "forbidden": forbidden}, "many"
  )
  violations, checked = naming_lint.check(
    rules, _variables("model/scope_49999/w", "model/other/w", "model/scope_3/bad_1999/bad_7/w")
  )
  assert time.monotonic() - start < 10
  assert checked == 3
  assert [(v.path, v.rule, v.message) for v in violations] == [
    ("model/other/w", "allowed", "matches none of the allowed patterns (an unexpected scope?)"),
    ("model/scope_3/bad_1999/bad_7/w", "forbidden", "matches forbidden pattern '(^|/)bad_7(/|$)'"),
    (
      "model/scope_3/bad_1999/bad_7/w",
      "forbidden",
      "matches forbidden pattern '(^|/)bad_1999(/|$)'",
    ),
  ]


def test_charset_is_checked_per_component_and_exactly():
  rules = naming_rules.merge(naming_rules.Rules(), {"charset": "a-z_"}, "mine")
  violations, _ = naming_lint.check(rules, _variables("model/ok_name/w", "model/Bad/w", "a/b\n"))
  assert [v.message for v in violations] == [
    "component 'Bad' has characters outside [a-z_]",
    "component 'b\\n' has characters outside [a-z_]",
  ]


def test_compiled_rules_pickle():
  import pickle

  rules = naming_rules.load(None, ["odapi"])
  naming_lint.check(rules, _variables("model/x"))
  again = pickle.loads(pickle.dumps(rules))
  assert again == rules
  assert naming_lint.check(again, _variables("model/x"))[0]
  rule = rename_rules.Rule.parse(r"a(b)->\1")
  assert pickle.loads(pickle.dumps(rule)).apply("ab/k") == "b/k"
