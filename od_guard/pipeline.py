"""The one restore check every integration drives: read -> match -> diagnose ->
decide -> report.

An integration (the OD API preflight, the Keras guard, the drop-in) adapts its
inputs and hands `run` what only it knows: the static stage it read (the
checkpoint, its context, the findings it made), a callable that captures the
live graph the restore will walk, its own diagnoses, and a values check.
`run` owns the sequence:

    static = pipeline.Static(inventory=inv, found=[...], not_checked=[...])
    report = pipeline.run(static, policy=policy, capture=lambda: pipeline.Capture(graph))

1. the model tier, when `od_guard.restore.decide` says it can still say
   something: `capture()`, then `matching.match` and the diagnoses;
2. the values check, told which keys the restore assigns;
3. `decide.decide` (the decision tables, then the policy);
4. the `record.Report`.

Findings that arrive after the verdict (the real restore's verification, the
workers' agreement) are judged with `amend`, which re-applies the policy:
no integration sets a verdict by hand.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
import contextlib
import dataclasses
import time
from typing import Any

from od_guard.checkpoint import inventory as inventory_lib
from od_guard.report import record
from od_guard.restore import decide
from od_guard.restore import diagnosis
from od_guard.restore import findings as findings_lib
from od_guard.restore import fingerprint as fingerprint_lib
from od_guard.restore import matching
from od_guard.restore import policy as policy_lib

Finding = findings_lib.Finding
# A diagnosis an integration adds to the generic ones (e.g. Keras layouts).
Diagnosis = Callable[[matching.RestorePrediction, inventory_lib.Inventory], list[Finding]]


class Timer:
  """Seconds per named phase, summed when a phase repeats."""

  def __init__(self, timings: Mapping[str, float] | None = None) -> None:
    self.timings: dict[str, float] = dict(timings or {})

  @contextlib.contextmanager
  def phase(self, name: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
      yield
    finally:
      self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - start


@dataclasses.dataclass
class Static:
  """What the read stage established, as the integration read it.

  Attributes:
    inventory: the checkpoint (None when there is none to read).
    found: the findings of the read stage (paths, format, config).
    not_checked: what could not be established, in words.
    fingerprint: what the checkpoint is (None without a checkpoint).
    config: the JSON form of what the checkpoint is checked against.
    config_summary: `config` in one line.
    timer: the phases timed so far (`run` goes on timing in it).
    context: the integration's own state from the read (e.g. the parsed
      pipeline.config), carried for its later stages.
  """

  inventory: inventory_lib.Inventory | None = None
  found: list[Finding] = dataclasses.field(default_factory=list)
  not_checked: list[str] = dataclasses.field(default_factory=list)
  fingerprint: fingerprint_lib.Fingerprint | None = None
  config: Mapping[str, Any] | None = None
  config_summary: str = ""
  timer: Timer = dataclasses.field(default_factory=Timer)
  context: Any = None


@dataclasses.dataclass(frozen=True)
class Capture:
  """The live graph the restore will walk, captured by the integration.

  Attributes:
    graph: the variables and objects the restore reaches (None: the model
      was built, but no restore can be predicted; a finding says why).
    root_hint: which roots the restore walks, in words (for fixes).
    strategy: the distribution strategy the model was built under, in words.
    found: findings the capture itself made (e.g. how Keras 3 restores).
    shims: the in-process shims the model was built with.
  """

  graph: matching.LiveGraph | None
  root_hint: str = ""
  strategy: str = ""
  found: Sequence[Finding] = ()
  shims: tuple[str, ...] = ()


# The model tier: returns the capture, or None when the restore cannot be
# predicted (a finding the integration added says why).
CaptureFn = Callable[[], Capture | None]
# The values check: told the keys the restore assigns (None: every value).
ValuesFn = Callable[[frozenset[str] | None], Sequence[Finding]]


def diagnose(
  restore: matching.RestorePrediction,
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


def run(
  static: Static,
  *,
  policy: policy_lib.Policy,
  capture: CaptureFn | None = None,
  predicted: matching.RestorePrediction | None = None,
  more: Sequence[Diagnosis] = (),
  coverage: bool = False,
  stock_assertion: bool = True,
  values: ValuesFn | None = None,
  training: bool = False,
  stock_name: str = "plain TF / Keras",
  strategy: str = "",
  tier: str | None = None,
) -> record.Report:
  """Runs the check's steps in order and returns the decided report.

  Args:
    static: the read stage.
    policy: the policy that decides.
    capture: the model tier (None: the static tier only). Not called when the
      static findings leave nothing for it to say (`decide.NO_MODEL_TIER`).
    predicted: a restore the integration predicted itself, by comparing
      files (e.g. a Keras weights file against the model's own layout),
      instead of `capture`; it is diagnosed like a matched one.
    more: the integration's own diagnoses of the predicted restore.
    coverage: check the policy's coverage thresholds.
    stock_assertion: see `diagnose`.
    values: the values check, run after the match.
    training: the verdict gates a training run.
    stock_name: who `Finding.stock_outcome` describes.
    strategy: the distribution strategy, in words, when no capture names it.
    tier: defaults to MODEL when a restore was predicted, else STATIC.
  """
  found = list(static.found)
  timer = static.timer
  inv = static.inventory
  restore, captured = predicted, None
  tier_possible = capture is not None and inv is not None and decide.model_tier_possible(found)
  if restore is None and tier_possible:
    captured = capture()
    if captured is not None and captured.graph is not None:
      with timer.phase("match"):
        restore = matching.match(captured.graph, inv)
  if restore is not None and inv is not None:
    with timer.phase("match"):
      found.extend(
        diagnose(
          restore,
          inv,
          policy=policy,
          coverage=coverage,
          stock_assertion=stock_assertion,
          root_hint=captured.root_hint if captured else "",
          more=more,
        )
      )
  if captured is not None:
    found.extend(captured.found)
  if values is not None:
    found.extend(values(None if restore is None else frozenset(b.key for b in restore.restored)))
  verdict, adjusted = decide.decide(policy, found, training=training, restore=restore)
  return record.Report(
    tier=tier or (record.MODEL if restore is not None else record.STATIC),
    config=static.config,
    checkpoint=inv,
    fingerprint=static.fingerprint,
    restore=restore,
    findings=tuple(adjusted),
    verdict=verdict,
    timings=dict(timer.timings),
    strategy=captured.strategy if captured and captured.strategy else strategy,
    shims=captured.shims if captured else (),
    not_checked=tuple(static.not_checked),
    config_summary=static.config_summary,
    stock_name=stock_name,
  )


def amend(
  report: record.Report,
  more: Sequence[Finding],
  *,
  first: bool = False,
  training: bool = False,
  not_checked: Sequence[str] = (),
  timings: Mapping[str, float] | None = None,
) -> record.Report:
  """`report` with findings that arrived after its verdict, judged by the
  same policy (`decide.amend`).

  Args:
    report: the decided report.
    more: the new findings (e.g. the restore's verification).
    first: they lead the report (a disagreement explains what follows).
    training: the verdict gates a training run.
    not_checked: more of what could not be established.
    timings: the phases timed until now (default: the report's).
  """
  verdict, every = decide.amend(
    report.verdict.policy,
    report.verdict,
    report.findings,
    more,
    training=training,
    first=first,
  )
  return dataclasses.replace(
    report,
    findings=tuple(every),
    verdict=verdict,
    not_checked=(*report.not_checked, *not_checked),
    timings=dict(report.timings if timings is None else timings),
  )
