"""`od_guard.restore.policy`: the presets, `decide` (findings -> verdict) and the
coverage thresholds. Pure data: no TensorFlow."""

from __future__ import annotations

import pytest

from od_guard import errors
from od_guard.checkpoint import components
from od_guard.restore import decide as decide_lib
from od_guard.restore import findings
from od_guard.restore import matching
from od_guard.restore import policy as policy_lib

from conftest import raises_exactly

ERROR, WARNING, INFO = findings.ERROR, findings.WARNING, findings.INFO
PRESETS = ("strict", "default", "lenient")

# Errors that only warn under 'lenient' (training runs, with fresh variables).
LENIENT_WARN_ONLY = (
  "variables_not_restored",
  "renamed_scopes",
  "relative_checkpoint_path",
  "stale_checkpoint_in_model_dir",
  "coverage_below_threshold",
)
# Errors that fail under every preset: the run would crash or train the wrong model.
ALWAYS_FAIL = (
  "shape_mismatch",
  "dtype_mismatch",
  "checkpoint_type_mismatch",
  "checkpoint_version_v1",
  "tf1_checkpoint",
  "feature_extractor_mismatch",
  "placeholder_path",
)


def _finding(code: str, severity: str, title: str | None = None) -> findings.Finding:
  return findings.Finding(code, severity, title or f"{code} happened.")


def _decide(name: str, *found: findings.Finding, **kwargs):
  return decide_lib.judge(policy_lib.preset(name), list(found), **kwargs)


# --- presets -----------------------------------------------------------------


def test_preset_fields():
  got = {
    name: (
      p.min_backbone_coverage,
      p.min_neck_coverage,
      p.allow_missing,
      p.allow_index_only,
      p.warnings_fail,
    )
    for name in PRESETS
    for p in [policy_lib.preset(name)]
  }
  assert got == {
    "strict": (1.0, 1.0, False, False, True),
    "default": (0.95, None, False, True, False),
    "lenient": (0.0, None, True, True, False),
  }
  assert [policy_lib.preset(n).name for n in PRESETS] == list(PRESETS)


def test_unknown_preset_is_a_usage_error():
  expected = errors.UsageError(
    "Unknown policy 'relaxed'.", received="'relaxed'", fix="Use one of: strict, default, lenient."
  )
  raises_exactly(expected, policy_lib.preset, "relaxed")


def test_replace_checks_fractions():
  p = policy_lib.preset("default").replace(min_backbone_coverage=0.5, min_neck_coverage=None)
  assert (p.name, p.min_backbone_coverage, p.min_neck_coverage) == ("default", 0.5, None)
  assert policy_lib.preset("default").min_backbone_coverage == 0.95  # presets stay as they are
  expected = errors.UsageError(
    "min_neck_coverage must be a fraction between 0 and 1.",
    received="min_neck_coverage=1.5",
    fix="Pass e.g. min_neck_coverage=0.95.",
  )
  raises_exactly(expected, policy_lib.preset("default").replace, min_neck_coverage=1.5)


# --- decide: every preset --------------------------------------------------------


@pytest.mark.parametrize("name", PRESETS)
def test_no_findings_and_facts_pass(name):
  verdict, adjusted = _decide(name, _finding("num_classes_differ", INFO))
  assert (verdict.decision, verdict.reasons, verdict.failed) == (policy_lib.PASS, (), False)
  assert [f.severity for f in adjusted] == [INFO]
  assert _decide(name)[0].decision == policy_lib.PASS


@pytest.mark.parametrize(
  "name,decision", [("strict", "fail"), ("default", "warn"), ("lenient", "warn")]
)
def test_a_warning(name, decision):
  verdict, _ = _decide(name, _finding("unused_checkpoint_values", WARNING, "12 values unused."))
  assert (verdict.decision, verdict.reasons) == (
    decision,
    ("unused_checkpoint_values: 12 values unused.",),
  )


@pytest.mark.parametrize("name", PRESETS)
@pytest.mark.parametrize("code", ALWAYS_FAIL)
def test_errors_that_fail_under_every_preset(name, code):
  verdict, adjusted = _decide(name, _finding(code, ERROR))
  assert verdict.decision == policy_lib.FAIL and verdict.failed
  assert [f.severity for f in adjusted] == [ERROR]


@pytest.mark.parametrize("code", LENIENT_WARN_ONLY)
def test_lenient_downgrades_these_errors_to_warnings(code):
  verdict, adjusted = _decide("lenient", _finding(code, ERROR, "It went wrong."))
  assert (verdict.decision, verdict.reasons) == (policy_lib.WARN, (f"{code}: It went wrong.",))
  assert [(f.code, f.severity) for f in adjusted] == [(code, WARNING)]
  for name in ("strict", "default"):
    assert _decide(name, _finding(code, ERROR))[0].decision == policy_lib.FAIL


def test_a_policy_derived_from_lenient_stays_lenient():
  derived = policy_lib.preset("lenient").replace(min_backbone_coverage=0.5)
  verdict, _ = decide_lib.judge(derived, [_finding("stale_checkpoint_in_model_dir", ERROR)])
  assert verdict.decision == policy_lib.WARN


def test_a_custom_policy_can_make_any_error_warn_only():
  custom = policy_lib.preset("default").replace(warn_only=frozenset({"head_shape_changed"}))
  verdict, adjusted = decide_lib.judge(custom, [_finding("head_shape_changed", ERROR)])
  assert verdict.decision == policy_lib.WARN and [f.severity for f in adjusted] == [WARNING]
  assert custom.to_dict()["warn_only"] == ["head_shape_changed"]
  assert decide_lib.judge(custom, [_finding("shape_mismatch", ERROR)])[0].failed


def test_downgrades_leave_warnings_and_facts_alone():
  _, adjusted = _decide(
    "lenient", _finding("renamed_scopes", WARNING), _finding("renamed_scopes", INFO)
  )
  assert [f.severity for f in adjusted] == [WARNING, INFO]


# --- decide: index-only checkpoints ---------------------------------------------


@pytest.mark.parametrize(
  "name,training,decision",
  [
    ("default", False, "warn"),
    ("lenient", False, "warn"),
    ("strict", False, "fail"),  # allow_index_only=False
    ("default", True, "fail"),  # a training run cannot restore an index alone
    ("lenient", True, "fail"),
    ("strict", True, "fail"),
  ],
)
def test_data_shard_missing(name, training, decision):
  shard = _finding("data_shard_missing", WARNING, "The data shard is missing.")
  verdict, adjusted = _decide(name, shard, training=training)
  assert verdict.decision == decision
  assert [f.severity for f in adjusted] == [ERROR if decision == "fail" else WARNING]
  assert verdict.reasons == ("data_shard_missing: The data shard is missing.",)


def test_allow_index_only_false_fails_the_default_policy():
  shard = _finding("data_shard_missing", WARNING)
  strictish = policy_lib.preset("default").replace(allow_index_only=False)
  assert decide_lib.judge(strictish, [shard])[0].decision == policy_lib.FAIL


# --- decide: allow_missing, warnings_fail ----------------------------------------


@pytest.mark.parametrize("code", ["variables_not_restored", "renamed_scopes"])
def test_allow_missing_lets_fresh_variables_through(code):
  missing = _finding(code, ERROR)
  allowing = policy_lib.preset("default").replace(allow_missing=True)
  assert _decide("default", missing)[0].decision == policy_lib.FAIL
  verdict, adjusted = decide_lib.judge(allowing, [missing])
  assert verdict.decision == policy_lib.WARN
  assert [f.severity for f in adjusted] == [WARNING]


def test_allow_missing_does_not_excuse_other_errors():
  allowing = policy_lib.preset("default").replace(allow_missing=True)
  for code in ("relative_checkpoint_path", "coverage_below_threshold", "shape_mismatch"):
    assert decide_lib.judge(allowing, [_finding(code, ERROR)])[0].decision == policy_lib.FAIL


def test_warnings_fail_lists_errors_then_warnings():
  policy = policy_lib.preset("default").replace(warnings_fail=True)
  verdict, adjusted = decide_lib.judge(
    policy,
    [
      _finding("unused_checkpoint_values", WARNING, "Unused values."),
      _finding("num_classes_differ", INFO, "3 classes, not 5."),
      _finding("shape_mismatch", ERROR, "Shapes differ."),
      _finding("not_requested", WARNING, "Heads stay fresh."),
    ],
  )
  assert verdict.decision == policy_lib.FAIL
  assert verdict.reasons == (
    "shape_mismatch: Shapes differ.",
    "unused_checkpoint_values: Unused values.",
    "not_requested: Heads stay fresh.",
  )
  # Errors first, then warnings, then facts; stable within a severity.
  assert [f.code for f in adjusted] == [
    "shape_mismatch",
    "unused_checkpoint_values",
    "not_requested",
    "num_classes_differ",
  ]


def test_without_warnings_fail_only_errors_are_reasons():
  verdict, _ = _decide(
    "default",
    _finding("unused_checkpoint_values", WARNING, "Unused values."),
    _finding("shape_mismatch", ERROR, "Shapes differ."),
  )
  assert (verdict.decision, verdict.reasons) == (
    policy_lib.FAIL,
    ("shape_mismatch: Shapes differ.",),
  )


def test_decide_does_not_change_the_findings_it_is_given():
  given = [_finding("renamed_scopes", ERROR), _finding("data_shard_missing", WARNING)]
  _, adjusted = _decide("lenient", *given, training=True)
  assert [f.severity for f in given] == [ERROR, WARNING]
  assert [(f.code, f.severity) for f in adjusted] == [
    ("data_shard_missing", ERROR),
    ("renamed_scopes", WARNING),
  ]


def test_verdict_to_dict():
  verdict, _ = _decide("default", _finding("not_requested", WARNING, "Heads stay fresh."))
  d = verdict.to_dict()
  assert (d["decision"], d["reasons"]) == ("warn", ["not_requested: Heads stay fresh."])
  assert d["policy"]["name"] == "default" and d["policy"]["min_backbone_coverage"] == 0.95


# --- coverage_findings ---------------------------------------------------------------


def _report(*coverage: matching.Coverage) -> matching.RestorePrediction:
  return matching.RestorePrediction(
    mode="object_graph",
    restored=(),
    missing=(),
    not_requested=(),
    unused=(),
    unused_other=(),
    shape_mismatches=(),
    dtype_mismatches=(),
    coverage=coverage,
  )


def _cov(component: str, restored: int, total: int) -> matching.Coverage:
  return matching.Coverage(component, restored, total, restored // 10, total // 10)


BOTH = frozenset({components.BACKBONE, components.NECK})


def test_backbone_below_the_default_threshold():
  (f,) = policy_lib.coverage_findings(
    policy_lib.preset("default"), _report(_cov(components.BACKBONE, 940, 1000)), BOTH
  )
  assert (f.code, f.severity) == ("coverage_below_threshold", ERROR)
  assert f.title == "Only 94.0% of the backbone's parameters restore; the default policy needs 95%."
  assert f.detail == "940 of 1,000 parameters (94 of 100 tensors)"
  assert f.data == {"component": "backbone", "fraction": 0.94, "threshold": 0.95}


def test_coverage_at_the_threshold_passes():
  report = _report(_cov(components.BACKBONE, 950, 1000), _cov(components.NECK, 0, 1000))
  assert policy_lib.coverage_findings(policy_lib.preset("default"), report, BOTH) == []


def test_strict_needs_the_whole_backbone_and_neck():
  report = _report(_cov(components.BACKBONE, 999, 1000), _cov(components.NECK, 500, 1000))
  got = policy_lib.coverage_findings(policy_lib.preset("strict"), report, BOTH)
  assert [(f.data["component"], f.data["threshold"]) for f in got] == [
    ("backbone", 1.0),
    ("neck", 1.0),
  ]
  assert (
    got[1].title == "Only 50.0% of the neck's parameters restore; the strict policy needs 100%."
  )


def test_lenient_has_no_backbone_threshold():
  report = _report(_cov(components.BACKBONE, 0, 1000))
  assert policy_lib.coverage_findings(policy_lib.preset("lenient"), report, BOTH) == []


def test_thresholds_apply_only_to_what_the_restore_asks_for():
  report = _report(_cov(components.BACKBONE, 0, 1000), _cov(components.NECK, 0, 1000))
  strict = policy_lib.preset("strict")
  assert policy_lib.coverage_findings(strict, report, frozenset()) == []
  got = policy_lib.coverage_findings(strict, report, frozenset({components.NECK}))
  assert [f.data["component"] for f in got] == ["neck"]


def test_components_without_parameters_are_not_judged():
  strict = policy_lib.preset("strict")
  assert policy_lib.coverage_findings(strict, _report(_cov(components.BACKBONE, 0, 0)), BOTH) == []
  assert policy_lib.coverage_findings(strict, _report(), BOTH) == []


def test_replaced_threshold_is_the_one_applied():
  report = _report(_cov(components.BACKBONE, 600, 1000))
  default = policy_lib.preset("default")
  assert len(policy_lib.coverage_findings(default, report, BOTH)) == 1
  assert (
    policy_lib.coverage_findings(default.replace(min_backbone_coverage=0.6), report, BOTH) == []
  )


@pytest.mark.parametrize(
  "name,decision", [("strict", "fail"), ("default", "fail"), ("lenient", "pass")]
)
def test_coverage_findings_through_decide(name, decision):
  policy = policy_lib.preset(name)
  found = policy_lib.coverage_findings(policy, _report(_cov(components.BACKBONE, 900, 1000)), BOTH)
  assert decide_lib.judge(policy, found)[0].decision == decision


if __name__ == "__main__":
  import sys

  sys.exit(pytest.main([__file__, "-q"]))
