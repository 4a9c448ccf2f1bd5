"""Rename inference: when the variables a restore misses and the checkpoint
values nothing takes differ by a systematic prefix substitution, the map that
repairs it ('model/CustomExtractor/' -> 'model/_feature_extractor/').

Pure data in, rules out; `diagnosis` turns the rules into a finding and
`od-guard remap --from-report` applies them.
"""

from __future__ import annotations

import collections
import dataclasses

from od_guard import _records
from od_guard.checkpoint import inventory
from od_guard.checkpoint import keys as checkpoint_keys
from od_guard.restore import matching as restore_match

_SCOPE_SHARE = 0.9  # of a scope's values a rename rule must move
_EXPLAINED_SHARE = 0.5  # of the missing variables the rules together must bind


@dataclasses.dataclass(frozen=True)
class RenameRule(_records.Record):
  """Checkpoint keys starting with `old` should start with `new`."""

  old: str
  new: str
  count: int

  def text(self) -> str:
    return f"{self.old} -> {self.new}"


def propose_renames(
  report: restore_match.RestorePrediction, inv: inventory.Inventory, *, min_count: int = 2
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
  unused_paths = _unused_paths(report, inv)
  missing_keys = [checkpoint_keys.checkpoint_key(u.path) for u in report.missing]
  votes = _votes(report, inv, unused_paths)

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
    and len(keys) >= _SCOPE_SHARE * sum(1 for k in missing_keys if k.startswith(rule[1]))
  }
  rules, covered = _greedy_rules(candidates, min_count)
  if rules is None or covered < _EXPLAINED_SHARE * len(report.missing):
    return []
  return rules


def _unused_paths(
  report: restore_match.RestorePrediction, inv: inventory.Inventory
) -> list[tuple[str, str]]:
  """(key, key as reached by a path) for every object-graph path of every unused
  value, so that a value keyed under one parent but reachable through the
  renamed scope counts."""
  alternatives = restore_match.checkpoint_paths(inv)
  out = []
  for key in report.unused:
    for path in alternatives.get(key) or ["/".join(checkpoint_keys.split_key(key)[0])]:
      out.append((key, checkpoint_keys.checkpoint_key(path)))
  return out


def _votes(
  report: restore_match.RestorePrediction,
  inv: inventory.Inventory,
  unused_paths: list[tuple[str, str]],
) -> dict[tuple[str, str], set[str]]:
  """(old prefix, new prefix) -> the missing keys an unused value with the same
  rest, shape and dtype votes for."""
  entries = inv.by_key()
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
  return votes


def _greedy_rules(
  candidates: dict[tuple[str, str], set[str]], min_count: int
) -> tuple[list[RenameRule] | None, int]:
  """Rules by most votes first; among equals the shortest (most general)
  prefixes. A prefix claimed by two different rules is a coincidence of shapes,
  not a rename (None), unless one rule strictly contains the other's keys.

  Returns:
    (the rules or None, how many missing keys they bind).
  """
  rules: list[RenameRule] = []
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
      return None, 0  # the same scope would go two ways: not a systematic rename
    rules.append(RenameRule(old=old, new=new, count=len(fresh)))
    covered |= fresh
    used_old.add(old)
    used_new.add(new)
  return rules, len(covered)
