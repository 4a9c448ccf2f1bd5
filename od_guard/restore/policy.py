"""Policies: how strict the verdict is (pass / warn / fail).

The policy's thresholds and switches; `od_guard.restore.decide` applies it
(`decide.judge`) after the decision tables.

Three presets, and explicit thresholds on top of any of them:

* ``strict``: every warning fails; the backbone and neck must restore fully;
  an index-only checkpoint fails.
* ``default``: errors fail, warnings warn; the backbone must restore to at
  least 95% of its parameters when a restore is expected.
* ``lenient``: only what would crash or silently train the wrong model fails:
  version/type/format errors, shape mismatches, nothing restored at all.

    policy = od_guard.policy.preset("default").replace(min_backbone_coverage=0.5)

Finding codes can be switched off as linters do: `ignore` (these codes never
decide the verdict) and `select` (only these codes may). An ignored or
unselected warning or error is kept in the report as a fact (INFO) whose
title says so, "(ignored by --ignore)" / "(not selected by --select)", and
whose ``data["ignored_by"]`` is "ignore" / "select": nothing vanishes.

    policy = od_guard.policy.preset("default").replace(ignore={"label_map_num_classes_differ"})
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from od_guard import errors
from od_guard.checkpoint import components
from od_guard.restore import codes as codes_lib
from od_guard.restore import findings

if TYPE_CHECKING:  # annotations only: matching is the model tier's
  from od_guard.restore import matching as restore_match

PASS = "pass"
WARN = "warn"
FAIL = "fail"

# With allow_missing, variables the restore asks for may stay fresh.
_MISSING = frozenset({"variables_not_restored", "renamed_scopes"})
# Under 'lenient' these errors only warn: training runs, with fresh variables.
_LENIENT_WARN_ONLY = _MISSING | {
  "relative_checkpoint_path",
  "stale_checkpoint_in_model_dir",
  "coverage_below_threshold",
}


@dataclasses.dataclass(frozen=True)
class Policy:
  """How strict the preflight is.

  Attributes:
    name: the preset it started from.
    min_backbone_coverage: lowest fraction of backbone parameters that must
      restore (checked when the restore asks for the backbone).
    min_neck_coverage: the same for the neck (None: not checked).
    allow_missing: variables the restore asks for may stay fresh (warn only).
    allow_index_only: a checkpoint without its data shard only warns.
    warnings_fail: any warning fails the run.
    warn_only: finding codes that only warn, whatever their severity.
    allow_unbuilt_model: a Keras model that is not built yet may take a
      deferred, unverified restore (otherwise that is an error).
    ignore: finding codes that never decide the verdict (kept as facts).
    select: when not empty, the only finding codes that may decide it.
  """

  name: str = "default"
  min_backbone_coverage: float = 0.95
  min_neck_coverage: float | None = None
  allow_missing: bool = False
  allow_index_only: bool = True
  warnings_fail: bool = False
  warn_only: frozenset[str] = frozenset()
  allow_unbuilt_model: bool = False
  ignore: frozenset[str] = frozenset()
  select: frozenset[str] = frozenset()

  def replace(self, **changes) -> Policy:
    for key in ("ignore", "select"):
      if key in changes:
        changes[key] = parse_codes(changes[key], source=f"Policy.{key}")
    for key, value in changes.items():
      if key.startswith("min_") and value is not None and not 0.0 <= value <= 1.0:
        raise errors.UsageError(
          f"{key} must be a fraction between 0 and 1.",
          received=f"{key}={value!r}",
          fix=f"Pass e.g. {key}=0.95.",
        )
    return dataclasses.replace(self, **changes)

  def to_dict(self) -> dict:
    d = dataclasses.asdict(self)
    d["warn_only"] = sorted(self.warn_only)
    # Only when set: reports of policies without them stay as they were.
    for key in ("ignore", "select"):
      if d[key]:
        d[key] = sorted(d[key])
      else:
        del d[key]
    return d

  def only_warns(self, code: str) -> bool:
    """Whether an error with this code is demoted to a warning."""
    return code in self.warn_only or (self.allow_missing and code in _MISSING)

  def ignored_by(self, code: str) -> str | None:
    """'ignore' or 'select' when that list keeps `code` from the verdict, else None."""
    if code in self.ignore:
      return "ignore"
    if self.select and code not in self.select:
      return "select"
    return None


def parse_codes(value, *, source: str) -> frozenset[str]:
  """Finding codes from a comma-separated string or an iterable of strings
  (e.g. "a,b" or ["a", "b"]); blanks are dropped.

  Args:
    value: the codes as given.
    source: where they come from, for messages (e.g. "--ignore").

  Raises:
    UsageError: not strings, or a code the registry does not hold (the message
      names the closest registered code).
  """
  if isinstance(value, str):
    items = value.split(",")
  elif isinstance(value, (list, tuple, set, frozenset)) and all(isinstance(v, str) for v in value):
    items = [part for v in value for part in v.split(",")]
  else:
    raise errors.UsageError(
      f"{source} must be finding codes: a list of strings or a comma-separated string.",
      received=f"{source} = {value!r}"[:200],
      fix=f'e.g. {source} = ["label_map_num_classes_differ"]',
    )
  out = frozenset(item.strip() for item in items if item.strip())
  for code in sorted(out):
    if code not in codes_lib.CODES:
      close = codes_lib.closest(code)
      raise errors.UsageError(
        f"Unknown finding code {code!r} in {source}."
        + (f" Did you mean {close!r}?" if close else ""),
        received=f"{source} {code}"[:200],
        fix=(f"Use {close!r}, or another" if close else "Use a")
        + " code of the findings reference (docs/reference/findings.md; the codes of a report are in "
        "`od-guard check --json`).",
      )
  return out


PRESETS = {
  "strict": Policy(
    name="strict",
    min_backbone_coverage=1.0,
    min_neck_coverage=1.0,
    allow_missing=False,
    allow_index_only=False,
    warnings_fail=True,
  ),
  "default": Policy(name="default"),
  "lenient": Policy(
    name="lenient",
    min_backbone_coverage=0.0,
    allow_missing=True,
    warn_only=_LENIENT_WARN_ONLY,
    allow_unbuilt_model=True,
  ),
}


def preset(name: str) -> Policy:
  """Returns a preset policy by name.

  Raises:
    UsageError: an unknown name.
  """
  if name not in PRESETS:
    raise errors.UsageError(
      f"Unknown policy {name!r}.", received=repr(name), fix=f"Use one of: {', '.join(PRESETS)}."
    )
  return PRESETS[name]


@dataclasses.dataclass(frozen=True)
class Verdict:
  """The decision and the findings that drove it."""

  decision: str
  reasons: tuple[str, ...]
  policy: Policy

  @property
  def failed(self) -> bool:
    return self.decision == FAIL

  def to_dict(self) -> dict:
    return {
      "decision": self.decision,
      "reasons": list(self.reasons),
      "policy": self.policy.to_dict(),
    }


def coverage_findings(
  policy: Policy, report: restore_match.RestorePrediction, requested: frozenset[str]
) -> list[findings.Finding]:
  """Threshold checks on coverage, for the components the restore asks for."""
  out = []
  for component, threshold in (
    (components.BACKBONE, policy.min_backbone_coverage),
    (components.NECK, policy.min_neck_coverage),
  ):
    if threshold is None or component not in requested:
      continue
    cov = report.coverage_of(component)
    if cov is None or not cov.total_params:
      continue
    if cov.fraction + 1e-12 < threshold:
      out.append(
        findings.Finding(
          "coverage_below_threshold",
          findings.ERROR,
          f"Only {cov.fraction:.1%} of the {component}'s parameters restore; the "
          f"{policy.name} policy needs {threshold:.0%}.",
          detail=(
            f"{cov.restored_params:,} of {cov.total_params:,} parameters "
            f"({cov.restored_tensors} of {cov.total_tensors} tensors)"
          ),
          fix=(
            "Fix the causes above, or lower the threshold (--guard_min_backbone_coverage / "
            "Policy.replace(min_backbone_coverage=...)) if partial restores are intended."
          ),
          data={"component": component, "fraction": cov.fraction, "threshold": threshold},
        )
      )
  return out
