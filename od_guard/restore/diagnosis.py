"""Diagnoses from a predicted restore (`restore_match.RestoreReport`).

Framework-level: used by the OD API preflight and the Keras guards alike.
Turns "412 restored, 120 missing, 120 unused" into causes: a systematic
renaming between model and checkpoint (with the rename map that repairs it),
shapes that cannot be assigned, and what stays freshly initialised.
"""

from __future__ import annotations

import collections
import dataclasses

from od_guard.checkpoint import inventory
from od_guard.checkpoint import key_folding
from od_guard.checkpoint import keys as checkpoint_keys
from od_guard.restore import findings
from od_guard.restore import matching as restore_match

Finding = findings.Finding
_SCOPE_SHARE = 0.9  # of a scope's values a rename rule must move
_EXPLAINED_SHARE = 0.5  # of the missing variables the rules together must bind


@dataclasses.dataclass(frozen=True)
class RenameRule:
  """Checkpoint keys starting with `old` should start with `new`."""

  old: str
  new: str
  count: int

  def to_dict(self) -> dict:
    return dataclasses.asdict(self)

  def text(self) -> str:
    return f"{self.old} -> {self.new}"


def propose_renames(
  report: restore_match.RestoreReport, inv: inventory.Inventory, *, min_count: int = 2
) -> list[RenameRule]:
  """Finds prefix substitutions that would bind missing variables to unused values.

  For every missing variable and every split of its key into prefix + rest,
  an unused checkpoint key ending in the same rest, with the same shape and
  dtype, votes for (its prefix -> the missing prefix). A rule must move
  nearly all of its scope on both sides; rules are taken greedily by votes,
  each variable counted once, so that the result maps whole scopes
  ('model/CustomExtractor/' -> 'model/_feature_extractor/'). Layers that
  merely share shapes (two batch norms of 64 channels) do not make a rename:
  when a scope would map two ways, or the rules bind less than half of the
  missing variables, there is no proposal.

  Returns:
    Rules with at least `min_count` variables, most votes first; [] when the
    differences are not a systematic renaming.
  """
  entries = inv.by_key()
  alternatives = restore_match.checkpoint_paths(inv)
  # Vote in path space (every object-graph path of an unused value), so that a
  # value keyed under one parent but reachable through the renamed scope counts.
  unused_paths: list[tuple[str, str]] = []
  for key in report.unused:
    for path in alternatives.get(key) or ["/".join(checkpoint_keys.split_key(key)[0])]:
      unused_paths.append((key, checkpoint_keys.checkpoint_key(path)))
  by_rest: dict[tuple[str, tuple[int, ...], str], list[str]] = collections.defaultdict(list)
  for key, as_key in unused_paths:
    e = entries[key]
    parts = as_key.split("/")
    for i in range(1, len(parts)):
      by_rest[("/".join(parts[i:]), e.shape, e.dtype)].append("/".join(parts[:i]) + "/")
  votes: dict[tuple[str, str], set[str]] = collections.defaultdict(set)
  for missing in report.missing:
    key = checkpoint_keys.checkpoint_key(missing.path)
    parts = key.split("/")
    for i in range(1, len(parts)):
      rest = "/".join(parts[i:])
      for old in by_rest.get((rest, missing.shape, missing.dtype), ()):
        new = "/".join(parts[:i]) + "/"
        if old != new:
          votes[(old, new)].add(key)
  missing_keys = [checkpoint_keys.checkpoint_key(u.path) for u in report.missing]

  def under(prefix: str, keys) -> int:
    return sum(1 for k in keys if k.startswith(prefix))

  # A scope rename moves whole scopes: a rule must account for nearly all of
  # the values under its old prefix and of the variables under its new one.
  def values_under(prefix: str) -> int:
    """Unused values (not paths: a value may have several) under a prefix."""
    return len({key for key, as_key in unused_paths if as_key.startswith(prefix)})

  candidates = {
    rule: keys
    for rule, keys in votes.items()
    if len(keys) >= min_count
    and len(keys) >= _SCOPE_SHARE * values_under(rule[0])
    and len(keys) >= _SCOPE_SHARE * under(rule[1], missing_keys)
  }
  # Most votes first; among equals the shortest (most general) prefixes. A
  # prefix claimed by two different rules is a coincidence of shapes, not a
  # rename, unless one rule strictly contains the other's keys.
  rules = []
  covered: set[str] = set()
  used_old: set[str] = set()
  used_new: set[str] = set()
  for (old, new), keys in sorted(
    candidates.items(), key=lambda kv: (-len(kv[1]), len(kv[0][0]) + len(kv[0][1]))
  ):
    fresh = keys - covered
    if len(fresh) < min_count:
      continue
    if any(old.startswith(o) or o.startswith(old) for o in used_old) or any(
      new.startswith(n) or n.startswith(new) for n in used_new
    ):
      return []  # the same scope would go two ways: not a systematic rename
    rules.append(RenameRule(old=old, new=new, count=len(fresh)))
    covered |= fresh
    used_old.add(old)
    used_new.add(new)
  if len(covered) < _EXPLAINED_SHARE * len(report.missing):
    return []
  return rules


def _fold(paths, limit=8) -> str:
  return "\n".join("  " + line for line in key_folding.fold_keys(paths, limit=limit))


def diagnose(
  report: restore_match.RestoreReport,
  inv: inventory.Inventory,
  *,
  root_hint: str = "",
  stock_assertion: bool = True,
) -> list[Finding]:
  """Findings for a predicted restore.

  Args:
    report: the predicted restore.
    inv: the checkpoint's inventory.
    root_hint: how the restore roots were chosen (e.g. 'fine_tune_checkpoint_type
      "detection" restores model/_feature_extractor'), for messages.
    stock_assertion: the caller restores with `assert_existing_objects_matched`
      (the OD API does), so missing objects raise rather than pass silently.
  """
  out: list[Finding] = []
  if report.missing:
    renames = propose_renames(report, inv)
    by_component = collections.Counter(u.component for u in report.missing)
    if renames:
      covered = sum(r.count for r in renames)
      out.append(
        Finding(
          "renamed_scopes",
          findings.ERROR,
          f"{len(report.missing)} variables are saved under other names: the checkpoint's "
          "scopes were renamed.",
          detail="\n".join(f"  {r.text()}  ({r.count} variables)" for r in renames),
          fix=(
            "Rewrite the checkpoint's names with this map: "
            + "; ".join(f"'{r.old}' -> '{r.new}'" for r in renames)
            + f" (it binds {covered} of {len(report.missing)} missing variables). "
            "Or save from a model whose attributes carry the expected names."
          ),
          stock_outcome=_unbound(report)
          if stock_assertion
          else "trains with these variables freshly initialised",
          data={"renames": [r.to_dict() for r in renames]},
        )
      )
    out.append(
      Finding(
        "variables_not_restored",
        findings.ERROR,
        f"{len(report.missing)} variables the restore asks for have no value in the "
        "checkpoint; they would stay freshly initialised.",
        detail=(
          ", ".join(f"{c}: {n}" for c, n in by_component.most_common())
          + (f" ({root_hint})" if root_hint else "")
          + "\n"
          + _fold([u.path for u in report.missing])
        ),
        fix=(
          "Use a checkpoint saved from the same architecture, or restore only what the "
          "checkpoint has (OD API: the fine_tune_checkpoint_type; Keras: exclude=...)."
        ),
        stock_outcome=_unbound(report)
        if stock_assertion
        else "trains with these variables freshly initialised",
      )
    )
  if report.shape_mismatches:
    first = report.shape_mismatches[0]
    out.append(
      Finding(
        "shape_mismatch",
        findings.ERROR,
        f"{len(report.shape_mismatches)} variables have other shapes in the checkpoint "
        "than in the model.",
        detail="\n".join(
          f"  {m.path}: checkpoint {m.checkpoint}, model {m.model}"
          for m in report.shape_mismatches[:8]
        )
        + (
          f"\n  ... and {len(report.shape_mismatches) - 8} more"
          if len(report.shape_mismatches) > 8
          else ""
        ),
        fix=(
          "The checkpoint and the config describe different networks: align the "
          "config with the checkpoint (architecture, depth multiplier, num_classes "
          'under "full"), or use a checkpoint of the configured model.'
        ),
        stock_outcome=(
          f"ValueError: Cannot assign value to variable '{first.path}': Shape "
          f"mismatch. The variable shape {first.model}, and the assigned value "
          f"shape {first.checkpoint} are incompatible."
        ),
      )
    )
  if report.dtype_mismatches:
    out.append(
      Finding(
        "dtype_mismatch",
        findings.ERROR,
        f"{len(report.dtype_mismatches)} variables have another dtype in the checkpoint.",
        detail="\n".join(
          f"  {m.path}: checkpoint {m.checkpoint}, model {m.model}"
          for m in report.dtype_mismatches[:8]
        ),
        fix="Match the model's dtype policy (e.g. mixed precision) to the checkpoint's.",
      )
    )
  if report.unused:
    by_component = collections.Counter(inv.by_key()[k].component for k in report.unused)
    out.append(
      Finding(
        "unused_checkpoint_values",
        findings.INFO,
        f"{len(report.unused)} model values in the checkpoint are not used by this restore.",
        detail=(
          ", ".join(f"{c}: {n}" for c, n in by_component.most_common())
          + "\n"
          + _fold(report.unused)
        ),
      )
    )
  if report.not_requested:
    by_component = collections.Counter(u.component for u in report.not_requested)
    out.append(
      Finding(
        "not_requested",
        findings.INFO,
        f"{len(report.not_requested)} variables are outside what this restore asks for "
        "and start freshly initialised.",
        detail=", ".join(f"{c}: {n}" for c, n in by_component.most_common())
        + (f" ({root_hint})" if root_hint else ""),
      )
    )
  return out


def _unbound(report: restore_match.RestoreReport) -> str:
  n = report.unmatched_objects or len(report.missing)
  return (
    f"AssertionError: Found {n} Python objects that were not bound to checkpointed "
    "values, likely due to changes in the Python program."
  )
