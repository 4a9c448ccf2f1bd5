"""The decision tables of od_guard.restore.decide, one row per test case."""

from __future__ import annotations

import pytest

from od_guard.checkpoint import components
from od_guard.restore import decide
from od_guard.restore import findings
from od_guard.restore import matching
from od_guard.restore import policy as policy_lib

pytestmark = pytest.mark.plain

ERROR, WARNING, INFO = findings.ERROR, findings.WARNING, findings.INFO
DEFAULT = policy_lib.preset("default")


def _f(code: str, severity: str = ERROR) -> findings.Finding:
  return findings.Finding(code, severity, f"{code} happened.", fix=f"fix {code}")


def _restore(*, missing: int = 0, mismatched: int = 0, restored: int = 1):
  binding = matching.Binding("v", "k", (1,), "float32", components.BACKBONE)
  unbound = matching.Unbound("u", (1,), "float32", components.BACKBONE)
  mismatch = matching.Mismatch("m", "k", (1,), (2,), components.BACKBONE)
  return matching.RestorePrediction(
    mode="object_graph",
    restored=(binding,) * restored,
    missing=(unbound,) * missing,
    not_requested=(),
    unused=(),
    unused_other=(),
    shape_mismatches=(mismatch,) * mismatched,
    dtype_mismatches=(),
    coverage=(),
  )


@pytest.mark.parametrize(
  ("consequence", "cause"),
  sorted((code, cause) for code, causes in decide.EXPLAINED_BY.items() for cause in causes),
)
def test_an_explained_error_becomes_a_fact_naming_its_cause(consequence, cause):
  out = decide.demote_consequences([_f(cause), _f(consequence)])
  demoted = next(f for f in out if f.code == consequence)
  assert demoted.severity == INFO
  assert demoted.title == f"{consequence} happened. (a consequence of {cause})"
  assert next(f for f in out if f.code == cause).severity == ERROR


@pytest.mark.parametrize("consequence", sorted(decide.EXPLAINED_BY))
def test_an_error_without_its_cause_stays_an_error(consequence):
  assert decide.demote_consequences([_f(consequence)])[0].severity == ERROR


@pytest.mark.parametrize("consequence", sorted(decide.EXPLAINED_BY))
def test_a_warning_cause_explains_nothing(consequence):
  cause = sorted(decide.EXPLAINED_BY[consequence])[0]
  out = decide.demote_consequences([_f(cause, WARNING), _f(consequence)])
  assert out[1].severity == ERROR


@pytest.mark.parametrize("code", sorted(decide.NO_MODEL_TIER))
def test_no_model_tier_after_these_errors(code):
  assert not decide.model_tier_possible([_f(code)])
  assert decide.model_tier_possible([_f(code, WARNING)])


@pytest.mark.parametrize("code", sorted(decide.FINAL_STATIC))
def test_final_static_errors_are_named(code):
  assert decide.final_static([_f(code), _f("num_classes_differ", WARNING)]) == {code}


def test_every_no_model_tier_error_is_final():
  assert decide.NO_MODEL_TIER <= decide.FINAL_STATIC


def test_an_architecture_guess_is_not_final():
  assert not decide.ARCHITECTURE_GUESSES & decide.FINAL_STATIC


@pytest.mark.parametrize("code", sorted(decide.ARCHITECTURE_GUESSES))
def test_a_clean_model_match_overrules_a_guess(code):
  verdict, out = decide.decide(DEFAULT, [_f(code)], restore=_restore())
  assert verdict.decision == policy_lib.PASS
  assert out[0].severity == INFO
  assert out[0].title.endswith("(overruled: the built model's restore binds every variable)")
  assert out[0].fix == ""


@pytest.mark.parametrize(
  "restore",
  [None, _restore(missing=1), _restore(mismatched=1), _restore(restored=0)],
  ids=["no model tier", "missing", "shape mismatch", "nothing restored"],
)
def test_a_guess_stands_without_a_clean_match(restore):
  verdict, out = decide.decide(DEFAULT, [_f("feature_extractor_mismatch")], restore=restore)
  assert verdict.failed
  assert out[0].severity == ERROR


@pytest.mark.parametrize("code", sorted(decide.INDEX_ONLY))
def test_index_only_is_an_error_when_training(code):
  assert decide.judge(DEFAULT, [_f(code, WARNING)], training=True)[0].failed
  assert decide.judge(DEFAULT, [_f(code, WARNING)])[0].decision == policy_lib.WARN
  strict = policy_lib.preset("strict")
  assert decide.judge(strict, [_f(code, WARNING)])[0].failed


def test_amend_fails_a_passing_verdict_on_a_new_error():
  verdict, found = decide.judge(DEFAULT, [_f("not_requested", INFO)])
  amended, every = decide.amend(DEFAULT, verdict, found, [_f("restore_not_applied")])
  assert amended.decision == policy_lib.FAIL
  assert amended.reasons == ("restore_not_applied happened.",)
  assert [f.code for f in every] == ["not_requested", "restore_not_applied"]


def test_amend_puts_a_disagreement_first_and_keeps_earlier_reasons():
  verdict, found = decide.judge(DEFAULT, [_f("shape_mismatch")])
  amended, every = decide.amend(DEFAULT, verdict, found, [_f("workers_disagree")], first=True)
  assert amended.decision == policy_lib.FAIL
  assert amended.reasons == (
    "workers_disagree happened.",
    "shape_mismatch: shape_mismatch happened.",
  )
  assert [f.code for f in every] == ["workers_disagree", "shape_mismatch"]


def test_amend_with_a_fact_keeps_the_verdict():
  verdict, found = decide.judge(DEFAULT, [_f("relative_checkpoint_path", WARNING)])
  amended, _ = decide.amend(DEFAULT, verdict, found, [_f("restore_verified", INFO)])
  assert amended == verdict


def test_amend_lets_the_policy_judge_the_new_finding():
  relaxed = DEFAULT.replace(warn_only=frozenset({"restore_not_applied"}))
  verdict, found = decide.judge(relaxed, [])
  amended, every = decide.amend(relaxed, verdict, found, [_f("restore_not_applied")])
  assert amended.decision == policy_lib.WARN
  assert every[0].severity == WARNING


@pytest.mark.parametrize(
  ("renderer", "code"),
  sorted((r, c) for r, codes in decide.SHOWN_WHEN_QUIET.items() for c in codes),
)
def test_facts_shown_when_quiet_are_registered(renderer, code):
  from od_guard.restore import codes

  assert code in codes.CODES
  assert renderer in ("preflight", "verify")


@pytest.mark.parametrize(
  ("changes", "code", "severity", "ignored_by"),
  [
    ({"ignore": {"checkpoint_type_mismatch"}}, "checkpoint_type_mismatch", ERROR, "ignore"),
    (
      {"ignore": {"label_map_num_classes_differ"}},
      "label_map_num_classes_differ",
      WARNING,
      "ignore",
    ),
    ({"select": {"checkpoint_not_found"}}, "checkpoint_type_mismatch", ERROR, "select"),
    ({"select": {"checkpoint_not_found"}}, "no_fine_tune_checkpoint", WARNING, "select"),
    (
      {"select": {"shape_mismatch"}, "ignore": {"shape_mismatch"}},
      "shape_mismatch",
      ERROR,
      "ignore",
    ),
  ],
)
def test_ignored_and_unselected_findings_stay_as_facts(changes, code, severity, ignored_by):
  policy = DEFAULT.replace(**changes)
  verdict, out = decide.judge(policy, [_f(code, severity)])
  assert verdict.decision == policy_lib.PASS and verdict.reasons == ()
  assert out[0].severity == INFO
  assert out[0].title == f"{code} happened. {decide.IGNORED_TITLE[ignored_by]}"
  assert out[0].data == {"ignored_by": ignored_by, "severity": severity}
  assert out[0].fix == f"fix {code}"


@pytest.mark.parametrize(
  ("changes", "code"),
  [
    ({"select": {"checkpoint_type_mismatch"}}, "checkpoint_type_mismatch"),
    ({"ignore": {"checkpoint_not_found"}}, "checkpoint_type_mismatch"),
  ],
)
def test_selected_and_not_ignored_findings_decide(changes, code):
  verdict, out = decide.judge(DEFAULT.replace(**changes), [_f(code)])
  assert verdict.decision == policy_lib.FAIL
  assert out[0].severity == ERROR and "ignored_by" not in out[0].data


def test_an_ignored_fact_is_left_as_it_is():
  f = _f("num_classes_differ", INFO)
  _, out = decide.judge(DEFAULT.replace(ignore={"num_classes_differ"}), [f])
  assert out == [f] and out[0].title == f.title


def test_amend_judges_late_findings_with_the_ignore_list():
  policy = DEFAULT.replace(ignore={"workers_disagree"})
  verdict, found = decide.judge(policy, [])
  verdict, out = decide.amend(policy, verdict, found, [_f("workers_disagree")])
  assert verdict.decision == policy_lib.PASS and out[0].severity == INFO
