"""The one restore check every integration drives: read -> match -> diagnose ->
decide -> report.

An integration (the OD API preflight, the Keras guard) adapts its inputs: it
reads the checkpoint and its own context (a pipeline.config, a live Keras
model), captures the live graph the restore will walk, and hands both here.
Matching, the restore diagnoses, the policy and the report are the same for
all of them:

    timer = pipeline.Timer()
    with timer.phase("match"):
      restore, found = pipeline.predict(graph, inv, policy=policy)
    report = pipeline.conclude(
        inventory=inv, restore=restore, found=found, policy=policy, timings=timer.timings)

Findings that are consequences of another error (variables not restored
because the scopes were renamed) are demoted to facts here, once, with one
table, so every integration explains a failure by its cause.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
import contextlib
import dataclasses
import time
from typing import Any

from od_guard.checkpoint import inventory as inventory_lib
from od_guard.report import record
from od_guard.restore import diagnosis
from od_guard.restore import findings as findings_lib
from od_guard.restore import fingerprint as fingerprint_lib
from od_guard.restore import matching
from od_guard.restore import policy as policy_lib

Finding = findings_lib.Finding
# A diagnosis an integration adds to the generic ones (e.g. Keras layouts).
Diagnosis = Callable[[matching.RestoreReport, inventory_lib.Inventory], list[Finding]]

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


class Timer:
  """Seconds per named phase, summed when a phase repeats."""

  def __init__(self) -> None:
    self.timings: dict[str, float] = {}

  @contextlib.contextmanager
  def phase(self, name: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
      yield
    finally:
      self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - start


def demote_consequences(found: Sequence[Finding]) -> list[Finding]:
  """Errors explained by another error become facts that name their cause."""
  errors_present = {f.code for f in found if f.severity == findings_lib.ERROR}
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


def diagnose(
  restore: matching.RestoreReport,
  inv: inventory_lib.Inventory,
  *,
  policy: policy_lib.Policy,
  coverage: bool = False,
  stock_assertion: bool = True,
  root_hint: str = "",
  more: Sequence[Diagnosis] = (),
) -> list[Finding]:
  """The diagnoses of a predicted restore.

  Args:
    restore: the predicted restore.
    inv: the checkpoint.
    policy: thresholds for the coverage checks.
    coverage: check the policy's coverage thresholds for the detector
      components the restore asks for.
    stock_assertion: the caller asserts like the OD API (its "not bound"
      message is quoted as the stock outcome).
    root_hint: which roots the restore walks, in words (for fixes).
    more: the integration's own diagnoses, run after the generic ones.
  """
  found = diagnosis.diagnose(restore, inv, stock_assertion=stock_assertion, root_hint=root_hint)
  for extra in more:
    found.extend(extra(restore, inv))
  if coverage:
    found.extend(policy_lib.coverage_findings(policy, restore, restore.requested_components()))
  return found


def predict(
  graph: matching.LiveGraph,
  inv: inventory_lib.Inventory,
  *,
  policy: policy_lib.Policy,
  **diagnose_args: Any,
) -> tuple[matching.RestoreReport, list[Finding]]:
  """Matches the live graph to the checkpoint and diagnoses the result."""
  restore = matching.match(graph, inv)
  return restore, diagnose(restore, inv, policy=policy, **diagnose_args)


def conclude(
  *,
  inventory: inventory_lib.Inventory | None,
  found: Sequence[Finding],
  policy: policy_lib.Policy,
  restore: matching.RestoreReport | None = None,
  training: bool = False,
  fingerprint: fingerprint_lib.Fingerprint | None = None,
  timings: Mapping[str, float] | None = None,
  strategy: str = "",
  not_checked: Sequence[str] = (),
  config: Mapping[str, Any] | None = None,
  config_summary: str = "",
  stock_name: str = "plain TF / Keras",
  tier: str | None = None,
) -> record.Report:
  """Decides (consequences demoted, then the policy) and builds the report.

  Args:
    inventory: the checkpoint as read (None when there is none).
    found: every finding of the check.
    policy: the policy that decides.
    restore: the predicted restore (None: only metadata was checked).
    training: the verdict gates a training run.
    fingerprint, timings, strategy, not_checked, config, config_summary,
      stock_name: carried into the report (see `record.Report`).
    tier: defaults to MODEL when a restore was predicted, else STATIC.
  """
  verdict, adjusted = policy_lib.decide(policy, demote_consequences(found), training=training)
  return record.Report(
    tier=tier or (record.MODEL if restore is not None else record.STATIC),
    config=config,
    checkpoint=inventory,
    fingerprint=fingerprint,
    restore=restore,
    findings=tuple(adjusted),
    verdict=verdict,
    timings=dict(timings or {}),
    strategy=strategy,
    not_checked=tuple(not_checked),
    config_summary=config_summary,
    stock_name=stock_name,
  )
