"""The rename map a preflight or guard report proposes, read from its JSON.

`read_rename_map` reads a report.json (`od-guard check --json`, the Keras and
OD API guards) and returns the renames its findings propose: scope renames
(``data.renames``: ``{"old": scope, "new": scope}``) and exact key renames
(``data.key_map``). It knows the report's JSON shape and nothing of rename rules
or checkpoints, so that the report layer can own it (issue 19: `report/`
builds and parses report JSON); `rename_rules.rules_from_report` turns its
result into rules.
"""

from __future__ import annotations

import dataclasses

from od_guard import _files
from od_guard import errors
from od_guard.naming import patterns

_FIX = "Pass the report.json that od-guard check --json or the guard wrote, unedited."


@dataclasses.dataclass(frozen=True)
class ProposedRename:
  """One rename a report proposes.

  Attributes:
    old: the scope (a key prefix) or, with `whole_key`, the exact key to rename.
    new: what it becomes.
    whole_key: True for an exact key (``data.key_map``), False for a scope.
  """

  old: str
  new: str
  whole_key: bool = False


def _type(value) -> str:
  names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}
  if value is None:
    return "null"
  return names.get(type(value), "a number" if isinstance(value, (int, float)) else "?")


def read_rename_map(
  report_path: str, *, error: type[errors.OdGuardError] = _files.FileDecodeError
) -> list[ProposedRename]:
  """The renames a preflight / guard JSON report proposes, in the report's order
  (a scope rename proposed twice is listed once).

  The report is read with `od_guard._files` (a regular file of at most
  `_files.REPORT_LIMIT` bytes, UTF-8 JSON) and its shape checked.

  Args:
    report_path: the report.json.
    error: the OdGuardError raised for a report that cannot be read or is not
      of a report's shape.

  Returns:
    What the findings' ``data.renames`` and ``data.key_map`` propose (empty when
    they propose nothing).

  Raises:
    `error`: the report cannot be read, or is not JSON of a report's shape.
  """
  report = _files.read_json(
    report_path,
    what="report",
    flag="--from-report",
    limit=_files.REPORT_LIMIT,
    error=error,
    fix=_FIX,
  )

  def shape(where: str, value, expected: str) -> errors.OdGuardError:
    return error(
      f"The report {report_path!r} is not an od_guard report: {where} is {_type(value)}, "
      f"not {expected}.",
      received=f"{report_path}: {where} = {patterns.brief(value)}",
      fix=_FIX,
    )

  if not isinstance(report, dict):
    raise shape("the document", report, "an object")
  findings = report.get("findings", [])
  if not isinstance(findings, list):
    raise shape("findings", findings, "an array")
  proposed: list[ProposedRename] = []
  seen: set[ProposedRename] = set()
  for i, f in enumerate(findings):
    for rename in _finding_renames(f"findings[{i}]", f, shape):
      if rename.whole_key or rename not in seen:
        seen.add(rename)
        proposed.append(rename)
  return proposed


def _finding_renames(where: str, finding, shape) -> list[ProposedRename]:
  """The renames one finding proposes: its data.renames (scopes), then its
  data.key_map (whole keys). `shape` makes the error for a value of the wrong
  type."""
  if not isinstance(finding, dict):
    raise shape(where, finding, "an object")
  data = finding.get("data")
  data = {} if data is None else data
  if not isinstance(data, dict):
    raise shape(f"{where}.data", data, "an object")
  out: list[ProposedRename] = []
  renames = data.get("renames")
  renames = [] if renames is None else renames
  if not isinstance(renames, list):
    raise shape(f"{where}.data.renames", renames, "an array")
  for j, r in enumerate(renames):
    at = f"{where}.data.renames[{j}]"
    if not isinstance(r, dict):
      raise shape(at, r, 'an object {"old": ..., "new": ...}')
    for side in ("old", "new"):
      if not isinstance(r.get(side), str) or (side == "old" and not r[side]):
        raise shape(f"{at}.{side}", r.get(side), "a non-empty string")
    out.append(ProposedRename(r["old"], r["new"]))
  key_map = data.get("key_map")
  key_map = {} if key_map is None else key_map
  if not isinstance(key_map, dict):
    raise shape(f"{where}.data.key_map", key_map, "an object")
  for old, new in key_map.items():
    if not isinstance(new, str):
      raise shape(f"{where}.data.key_map[{patterns.brief(old)}]", new, "a string")
    out.append(ProposedRename(old, new, whole_key=True))
  return out
