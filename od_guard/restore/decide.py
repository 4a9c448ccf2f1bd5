"""Decide: the one place where findings become a verdict.

Every rule that turns findings into a verdict is a table here, as data, and
`decide` applies them in one order for every integration:

1. `overrule_guesses`: the static tier's guesses about the architecture
   (`ARCHITECTURE_GUESSES`) become facts when the built model's restore binds
   every variable it asks for.
2. `demote_consequences`: an error that another error explains
   (`EXPLAINED_BY`) becomes a fact that names its cause.
3. `judge`: the policy (`od_guard.restore.policy`) turns what is left into
   pass / warn / fail; findings its `ignore` / `select` lists keep out become
   facts (`IGNORED_TITLE`); `INDEX_ONLY` findings are errors wherever the
   values must be restored.

Two more tables say what the static tier's errors mean for the rest of the
check: `NO_MODEL_TIER` (the model tier cannot run) and `FINAL_STATIC` (no
model-built match can change the verdict: the drop-in stops before importing
TensorFlow). Findings that arrive after a verdict (the real restore's
verification, the workers' agreement) are judged again with `amend`, never
forced by hand.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
import dataclasses
from typing import TYPE_CHECKING

from od_guard.restore import findings as findings_lib
from od_guard.restore import policy as policy_lib

if TYPE_CHECKING:  # annotations only: matching is the model tier's
  from od_guard.restore import matching

Finding = findings_lib.Finding

# When an error with one of these codes is present, a finding with the key's
# code is its consequence (fixing the cause fixes it) and becomes a fact.
EXPLAINED_BY: Mapping[str, frozenset[str]] = {
  # The model tier's map is exact; the static one only names the scope.
  "restore_scope_missing": frozenset({"renamed_scopes"}),
  "renamed_scopes": frozenset(
    {"feature_extractor_mismatch", "meta_architecture_mismatch", "checkpoint_type_mismatch"}
  ),
  "variables_not_restored": frozenset(
    {
      "checkpoint_type_mismatch",
      "weightless_checkpoint",
      "restore_scope_missing",
      "feature_extractor_mismatch",
      "meta_architecture_mismatch",
      "neck_mismatch",
      "saved_model_variables",
      "renamed_scopes",
      "keras_layout_mismatch",
      "auto_named_layers",
      "keras_optimizer_generation",
    }
  ),
  "shape_mismatch": frozenset(
    {
      "feature_extractor_mismatch",
      "depth_multiplier_mismatch",
      "num_classes_differ",
      "meta_architecture_mismatch",
      "keras_layout_mismatch",
      "head_shape_changed",
    }
  ),
  # The builder's error is the evidence; the static diagnosis is the cause.
  "model_build_failed": frozenset(
    {"meta_architecture_mismatch", "feature_extractor_mismatch", "neck_mismatch"}
  ),
  "coverage_below_threshold": frozenset(
    {
      "checkpoint_type_mismatch",
      "weightless_checkpoint",
      "restore_scope_missing",
      "feature_extractor_mismatch",
      "meta_architecture_mismatch",
      "renamed_scopes",
      "neck_mismatch",
    }
  ),
}

# Static errors after which the model tier cannot run or cannot say more: no
# checkpoint to match, or a config whose model the TF2 OD API does not build.
NO_MODEL_TIER = frozenset(
  {
    "placeholder_path",
    "tf1_checkpoint",
    "checkpoint_not_found",
    "windows_path_separator",
    "checkpoint_subdir_missing",
    "tf1_checkpoint_name",
    "tf1_feature_extractor",
    "model_section_incomplete",
  }
)

# Static errors that no model-built match can overrule: the verdict is final
# before TensorFlow is imported (the drop-in stops there, ~7 s and more
# earlier). Every NO_MODEL_TIER error is final too.
FINAL_STATIC = NO_MODEL_TIER | frozenset(
  {
    "checkpoint_path_is_file",
    "checkpoint_path_is_directory",
    "saved_model_variables",
    "checkpoint_version_v1",
    "checkpoint_type_mismatch",
    "data_shard_missing",
    "checkpoint_value_corrupt",
    "model_dir_training_complete",  # the resumed step against the steps to train
    "tpu_local_path",
  }
)

# Static guesses about the architecture (from the checkpoint's fingerprint):
# a model-built restore that binds every variable overrules them.
ARCHITECTURE_GUESSES = frozenset(
  {
    "meta_architecture_mismatch",
    "feature_extractor_mismatch",
    "neck_mismatch",
    "depth_multiplier_mismatch",
  }
)

# A checkpoint without its data shard cannot be restored: these are errors
# when the verdict gates training or the policy refuses index-only checkpoints.
INDEX_ONLY = frozenset({"data_shard_missing"})

# Facts (INFO findings) that the terminal report shows even when not verbose,
# because users act on them. Per renderer: the preflight's, and verify's.
SHOWN_WHEN_QUIET: Mapping[str, frozenset[str]] = {
  "preflight": frozenset({"num_classes_differ", "model_build_failed"}),
  "verify": frozenset({"constant_restored_kernels"}),
}


# What an ignored (or unselected) finding's title ends with: the policy's
# `ignore` / `select` lists (from --ignore / --select, pre-commit args, the
# drop-in's --guard_ignore / --guard_select, [tool.od_guard] or Policy) keep
# it from the verdict, as a fact.
IGNORED_TITLE: Mapping[str, str] = {
  "ignore": "(ignored by --ignore)",
  "select": "(not selected by --select)",
}

_SEVERITY_ORDER = (policy_lib.FAIL, policy_lib.WARN, policy_lib.PASS)


def errors_of(found: Iterable[Finding]) -> set[str]:
  """The codes of the error findings."""
  return {f.code for f in found if f.severity == findings_lib.ERROR}


def model_tier_possible(found: Iterable[Finding]) -> bool:
  """Whether the model tier can still say something after these static findings."""
  return not errors_of(found) & NO_MODEL_TIER


def final_static(found: Iterable[Finding]) -> set[str]:
  """The static errors that make the verdict final without the model tier."""
  return errors_of(found) & FINAL_STATIC


def overrule_guesses(
  found: Sequence[Finding], restore: matching.RestorePrediction | None
) -> list[Finding]:
  """Static architecture guesses become facts when the built model's restore
  binds every variable it asks for, with no shape mismatch."""
  if restore is None or restore.missing or restore.shape_mismatches or not restore.restored:
    return list(found)
  return [
    dataclasses.replace(
      f,
      severity=findings_lib.INFO,
      title=f"{f.title} (overruled: the built model's restore binds every variable)",
      fix="",
    )
    if f.code in ARCHITECTURE_GUESSES and f.severity == findings_lib.ERROR
    else f
    for f in found
  ]


def demote_consequences(found: Sequence[Finding]) -> list[Finding]:
  """Errors explained by another error become facts that name their cause."""
  errors_present = errors_of(found)
  out = []
  for f in found:
    causes = EXPLAINED_BY.get(f.code, frozenset()) & errors_present
    if causes and f.severity == findings_lib.ERROR:
      f = dataclasses.replace(
        f,
        severity=findings_lib.INFO,
        title=f"{f.title} (a consequence of {', '.join(sorted(causes))})",
      )
    out.append(f)
  return out


def judge(
  policy: policy_lib.Policy, all_findings: Sequence[Finding], *, training: bool = False
) -> tuple[policy_lib.Verdict, list[Finding]]:
  """Applies the policy to findings as they are (no demotions).

  Args:
    policy: the policy.
    all_findings: every finding of the preflight.
    training: the verdict gates a training run (an index-only checkpoint
      cannot be restored there, whatever the policy).

  Returns:
    The verdict and the findings with severities as the policy sees them.
  """
  adjusted = []
  for f in all_findings:
    severity = f.severity
    ignored_by = policy.ignored_by(f.code) if severity != findings_lib.INFO else None
    if ignored_by:  # kept, as a fact that says why it does not count
      adjusted.append(
        dataclasses.replace(
          f,
          severity=findings_lib.INFO,
          title=f"{f.title} {IGNORED_TITLE[ignored_by]}",
          data={**f.data, "ignored_by": ignored_by, "severity": f.severity},
        )
      )
      continue
    if f.code in INDEX_ONLY and (training or not policy.allow_index_only):
      severity = findings_lib.ERROR
    elif severity == findings_lib.ERROR and policy.only_warns(f.code):
      severity = findings_lib.WARNING
    adjusted.append(dataclasses.replace(f, severity=severity) if severity != f.severity else f)
  errs = [f for f in adjusted if f.severity == findings_lib.ERROR]
  warns = [f for f in adjusted if f.severity == findings_lib.WARNING]
  if errs or (policy.warnings_fail and warns):
    decision = policy_lib.FAIL
    reasons = [f"{f.code}: {f.title}" for f in errs + (warns if policy.warnings_fail else [])]
  elif warns:
    decision = policy_lib.WARN
    reasons = [f"{f.code}: {f.title}" for f in warns]
  else:
    decision = policy_lib.PASS
    reasons = []
  return policy_lib.Verdict(decision, tuple(reasons), policy), findings_lib.by_severity(adjusted)


def decide(
  policy: policy_lib.Policy,
  found: Sequence[Finding],
  *,
  training: bool = False,
  restore: matching.RestorePrediction | None = None,
) -> tuple[policy_lib.Verdict, list[Finding]]:
  """Every rule, in order: guesses overruled by `restore` (the model tier's
  prediction, when there is one), consequences demoted, then the policy.

  Returns:
    The verdict and the findings as the verdict sees them.
  """
  return judge(policy, demote_consequences(overrule_guesses(found, restore)), training=training)


def amend(
  policy: policy_lib.Policy,
  verdict: policy_lib.Verdict,
  found: Sequence[Finding],
  more: Sequence[Finding],
  *,
  training: bool = False,
  first: bool = False,
) -> tuple[policy_lib.Verdict, list[Finding]]:
  """The verdict after findings that arrive once it was given (the real
  restore's verification, the workers' agreement).

  `found` are the findings as the verdict saw them; `more` are judged with
  them by the same policy. The earlier reasons are kept after the new ones,
  so a report says first what changed the verdict. With `first`, `more` lead
  the findings (a disagreement explains everything after it).
  """
  more_verdict, judged = judge(policy, list(more), training=training)
  every = [*judged, *found] if first else [*found, *judged]
  decision = min(verdict.decision, more_verdict.decision, key=_SEVERITY_ORDER.index)
  new_errors = tuple(f.title for f in judged if f.severity == findings_lib.ERROR)
  if new_errors:
    reasons = (*new_errors, *verdict.reasons)
  else:
    reasons = (*verdict.reasons, *more_verdict.reasons)
  return policy_lib.Verdict(decision, reasons, policy), every
