"""The naming linter: saved values' names checked against `naming.rules.Rules`.

`check` applies every rule to each saved value (every pattern matched in time
linear in the path's length, `naming.patterns`); `violation_lines` renders what
it found for a terminal, folded by prefix. `od-guard lint`, the save-time guard
(`naming.save_guard`) and the Keras and OD API naming hooks all lint with it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
import dataclasses

from od_guard import _records
from od_guard.checkpoint import inventory
from od_guard.checkpoint import key_folding
from od_guard.checkpoint import limits
from od_guard.naming import patterns
from od_guard.naming import rules as naming_rules

SCHEMA = "od_guard.lint/1"


@dataclasses.dataclass(frozen=True)
class Violation(_records.Record):
  """A saved value's name that breaks a rule: its `key`, its object `path`, the
  `rule` and the `message` saying how."""

  key: str
  path: str
  rule: str
  message: str


def _without_tensor_suffix(path: str) -> str:
  """`path` without a Keras 2 HDF5 output index (``dense/kernel:0``)."""
  head, colon, tail = path.rpartition(":")
  return head if colon and tail.isascii() and tail.isdigit() else path


def check(
  rules: naming_rules.Rules, variables: Iterable[inventory.Variable]
) -> tuple[list[Violation], int]:
  """Checks saved values' names; returns (violations, number of values checked).

  Every pattern is matched in time linear in the path's length.

  Raises:
    RulesError: a pattern of `rules` does not compile (rules built in code;
      `load` and `merge` check theirs).
  """
  compiled = naming_rules.compiled_patterns(rules)
  allowed, forbidden = compiled.allowed, compiled.forbidden
  charset_path, charset_part = compiled.charset_path, compiled.charset_part
  out: list[Violation] = []
  checked = 0
  for v in variables:
    if v.kind in rules.exempt_kinds:
      continue
    checked += 1
    # Keras 2 HDF5 names its datasets like tensors ('dense/kernel:0'); the
    # output index is not part of the name a user chose.
    path = _without_tensor_suffix(v.path)
    data = patterns.utf8(path)
    parts = path.split("/")
    if rules.required_roots and parts[0] not in rules.required_roots:
      out.append(
        Violation(
          v.key,
          path,
          "required_roots",
          f"root {parts[0]!r} is not one of {list(rules.required_roots)}",
        )
      )
    if allowed is not None and not allowed.any(data):
      out.append(
        Violation(
          v.key, path, "allowed", "matches none of the allowed patterns (an unexpected scope?)"
        )
      )
    if forbidden is not None:
      for i in forbidden.matching(data):
        out.append(
          Violation(v.key, path, "forbidden", f"matches forbidden pattern {rules.forbidden[i]!r}")
        )
    if charset_path is not None and charset_path.fullmatch(data) is None:
      bad = [c for c in parts if c and charset_part.fullmatch(patterns.utf8(c)) is None]
      if bad:
        out.append(
          Violation(
            v.key, path, "charset", f"component {bad[0]!r} has characters outside [{rules.charset}]"
          )
        )
    if rules.max_depth is not None and len(parts) > rules.max_depth:
      out.append(
        Violation(v.key, path, "max_depth", f"{len(parts)} components, more than {rules.max_depth}")
      )
  return out, checked


def group_by_rule(violations: Iterable[Violation]) -> dict[str, list[str]]:
  """The violations' paths under each broken rule, as ``'rule: message'``, in
  order of first appearance."""
  out: dict[str, list[str]] = {}
  for v in violations:
    out.setdefault(f"{v.rule}: {v.message}", []).append(v.path)
  return out


def violation_lines(violations: Iterable[Violation], *, limit: int) -> list[str]:
  """The violations as text lines: each broken rule, then its paths folded by
  prefix (at most `limit` lines per rule).

  Args:
    violations: what `check` found.
    limit: most folded path lines listed under one rule.

  Returns:
    ``"  [rule: message]"`` lines, each followed by its ``"    path"`` lines;
    no line when there is no violation.
  """
  lines: list[str] = []
  for rule, paths in group_by_rule(violations).items():
    lines.append(f"  [{rule}]")
    # Keys come from the file: control characters are escaped for the terminal.
    lines.extend(
      "    " + limits.printable(line) for line in key_folding.fold_keys(paths, limit=limit)
    )
  return lines


@dataclasses.dataclass(frozen=True)
class LintResult:
  """One checkpoint's names against one set of rules.

  Attributes:
    checkpoint: the checkpoint prefix.
    rules: the rules it was checked under.
    variables: how many names it holds.
    checked: how many of them the rules applied to (the rest are exempt).
    violations: the names that break a rule.
  """

  checkpoint: str
  rules: naming_rules.Rules
  variables: int
  checked: int
  violations: tuple[Violation, ...]

  @property
  def passed(self) -> bool:
    return not self.violations

  def to_dict(self) -> dict:
    return {
      "schema": SCHEMA,
      "checkpoint": self.checkpoint,
      "rules": self.rules.to_dict(),
      "checked": self.checked,
      "exempt": self.variables - self.checked,
      "passed": self.passed,
      "violations": [v.to_dict() for v in self.violations],
    }

  def lines(self, *, limit: int = 8) -> list[str]:
    """The terminal text: a summary line, then the violations by rule."""
    head = (
      f"od-guard lint: {self.checkpoint} under rules {self.rules.name}: {self.checked} names "
      f"checked, {self.variables - self.checked} exempt, {len(self.violations)} violation(s)"
    )
    return [head, *violation_lines(self.violations, limit=limit)]


def lint(rules: naming_rules.Rules, inv: inventory.Inventory) -> LintResult:
  """`check` of a checkpoint's saved names, as a result."""
  violations, checked = check(rules, inv.variables)
  return LintResult(inv.prefix, rules, len(inv.variables), checked, tuple(violations))


def to_dict(results: Sequence[LintResult]) -> dict:
  """The JSON document of one result, or of several (schema SCHEMA + '+list')."""
  if len(results) == 1:
    return results[0].to_dict()
  return {"schema": SCHEMA + "+list", "results": [r.to_dict() for r in results]}
