"""Pure transforms from report JSON to what the dashboard's routes serve.

No I/O and no TensorBoard here: the plugin reads the records and hands them
over; these functions shape them for the browser (the report without its
variable lists, the variable table as columns, the difference of two reports,
the naming checks over steps).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
import math
import re
from typing import Any

from od_guard.checkpoint import inventory
from od_guard.checkpoint import key_folding
from od_guard.checkpoint import keys as checkpoint_keys

RESTORED = "restored"
MISSING = "missing"
SHAPE_MISMATCH = "shape_mismatch"
DTYPE_MISMATCH = "dtype_mismatch"
UNUSED = "unused"
NOT_REQUESTED = "not_requested"
ABSENT = "absent"  # compare only: the variable is not in that report
FATES = (RESTORED, MISSING, SHAPE_MISMATCH, DTYPE_MISMATCH, UNUSED, NOT_REQUESTED)

# A shape as the restore report writes it for a mismatch: '(3, 3, 32)'.
_DIM = re.compile(r"-?\d+")


def _params(shape: Iterable[int] | None) -> int:
  """Parameters of a shape; -1 when unknown."""
  if shape is None:
    return -1
  dims = list(shape)
  if any(d < 0 for d in dims):
    return -1
  return math.prod(dims)


def _shape_text_params(text: str) -> int:
  """Parameters of a shape as the restore report renders it ('(3, 3)')."""
  if not text.startswith("("):
    return -1
  return _params(int(d) for d in _DIM.findall(text))


def renames(report: Mapping[str, Any]) -> list[dict]:
  """The rename map a report proposes (`data.renames` of its findings), one row
  per (old, new) with the codes of the findings that propose it."""
  out: dict[tuple[str, str], dict] = {}
  for f in report.get("findings") or ():
    for r in (f.get("data") or {}).get("renames") or ():
      if not (isinstance(r, Mapping) and "old" in r and "new" in r):
        continue
      row = out.setdefault(
        (str(r["old"]), str(r["new"])),
        {"old": str(r["old"]), "new": str(r["new"]), "count": r.get("count"), "codes": []},
      )
      row["codes"].append(f.get("code", ""))
  return list(out.values())


def report_view(report: Mapping[str, Any]) -> dict:
  """The report without its per-variable lists (those go to `variable_table`)."""
  out = {k: v for k, v in report.items() if k != "restore"}
  restore = report.get("restore")
  if restore:
    out["restore"] = {k: restore.get(k) for k in ("schema", "mode", "counts", "coverage")}
  out["renames"] = renames(report)
  return out


def _default_key(path: str) -> str:
  """The key TF writes for the variable at `path` (only other keys are listed)."""
  if "." in path:
    return checkpoint_keys.checkpoint_key(path)
  return path + checkpoint_keys.VARIABLE_VALUE_SUFFIX


class _Columns:
  """The variable table, one list per column; strings repeated across rows
  (components, dtypes) as indices into a small table."""

  def __init__(self):
    self.path: list[str] = []
    self.fate: list[int] = []
    self.component: list[int] = []
    self.dtype: list[int] = []
    self.shape: list[str] = []
    self.checkpoint: list[str] = []
    self.params: list[int] = []
    self.key: list[str] = []
    self._components: dict[str, int] = {}
    self._dtypes: dict[str, int] = {}

  @staticmethod
  def _index(table: dict[str, int], value: str) -> int:
    return table.setdefault(value, len(table))

  def add(
    self,
    path: str,
    fate: str,
    *,
    component: str = "",
    dtype: str = "",
    shape: str = "",
    checkpoint: str = "",
    params: int = -1,
    key: str = "",
  ) -> None:
    self.path.append(path)
    self.fate.append(FATES.index(fate))
    self.component.append(self._index(self._components, component or ""))
    self.dtype.append(self._index(self._dtypes, dtype or ""))
    self.shape.append(shape)
    self.checkpoint.append(checkpoint)
    self.params.append(params)
    self.key.append("" if key == "" or key == _default_key(path) else key)

  def to_dict(self) -> dict:
    return {
      "fates": list(FATES),
      "components": list(self._components),
      "dtypes": list(self._dtypes),
      "path": self.path,
      "fate": self.fate,
      "component": self.component,
      "dtype": self.dtype,
      "shape": self.shape,
      "checkpoint": self.checkpoint,
      "params": self.params,
      "key": self.key,
    }


def _unused_path(key: str) -> str:
  parts, _ = checkpoint_keys.split_key(key)
  return "/".join(parts)


def variable_table(report: Mapping[str, Any]) -> dict:
  """Every variable's fate, as columns.

  Rows: the model's variables (restored, missing, shape or dtype mismatch, not
  requested) and the checkpoint's model values nothing takes (unused; their
  shapes are not in the report). `shape` is the model's shape; `checkpoint` is
  the checkpoint's shape (shape mismatch) or dtype (dtype mismatch); `params`
  is -1 where the report does not give the shape.
  """
  restore = report.get("restore") or {}
  cols = _Columns()
  for fate, entries in (
    (RESTORED, "restored"),
    (MISSING, "missing"),
    (NOT_REQUESTED, "not_requested"),
  ):
    for v in restore.get(entries) or ():
      shape = tuple(v.get("shape") or ())
      cols.add(
        v["path"],
        fate,
        component=v.get("component", ""),
        dtype=v.get("dtype", ""),
        shape=inventory.format_shape(shape),
        params=_params(shape),
        key=v.get("key", ""),
      )
  for fate, entries in ((SHAPE_MISMATCH, "shape_mismatches"), (DTYPE_MISMATCH, "dtype_mismatches")):
    for m in restore.get(entries) or ():
      model = str(m.get("model", ""))  # the model's shape, or its dtype
      shapes = fate == SHAPE_MISMATCH
      cols.add(
        m["path"],
        fate,
        component=m.get("component", ""),
        checkpoint=str(m.get("checkpoint", "")),
        key=m.get("key", ""),
        **({"shape": model, "params": _shape_text_params(model)} if shapes else {"dtype": model}),
      )
  for key in restore.get("unused") or ():
    cols.add(_unused_path(key), UNUSED, key=key)
  out = cols.to_dict()
  out["rows"] = len(cols.path)
  out["counts"] = dict.fromkeys(FATES, 0)
  for i in cols.fate:
    out["counts"][FATES[i]] += 1
  out["unused_other"] = len(restore.get("unused_other") or ())
  out["has_restore"] = bool(restore)
  return out


def fates(table: Mapping[str, Any]) -> dict[str, str]:
  """path -> fate of a variable table (the first fate where a path repeats)."""
  names = table["fates"]
  out: dict[str, str] = {}
  for path, fate in zip(table["path"], table["fate"]):
    out.setdefault(path, names[fate])
  return out


def _findings_by_code(report: Mapping[str, Any]) -> dict[str, Mapping]:
  out: dict[str, Mapping] = {}
  for f in report.get("findings") or ():
    out.setdefault(f.get("code", ""), f)
  return out


def _coverage(report: Mapping[str, Any]) -> dict[str, float]:
  restore = report.get("restore") or {}
  return {c["component"]: c.get("fraction", 0.0) for c in restore.get("coverage") or ()}


def _flat(mapping: Mapping[str, Any] | None, skip: Iterable[str] = ()) -> dict[str, Any]:
  return {k: v for k, v in (mapping or {}).items() if k not in set(skip)}


def _differing(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[dict]:
  return [
    {"field": k, "a": a.get(k), "b": b.get(k)}
    for k in sorted(set(a) | set(b))
    if a.get(k) != b.get(k)
  ]


def compare(
  a: Mapping[str, Any],
  b: Mapping[str, Any],
  *,
  table_a: Mapping[str, Any] | None = None,
  table_b: Mapping[str, Any] | None = None,
  limit: int = 2000,
) -> dict:
  """What changed from report `a` to report `b`: verdict, findings, variable fates.

  Args:
    a, b: two preflight reports (`od_guard.preflight/1`).
    table_a, table_b: their variable tables, if already computed.
    limit: at most this many changed variables are listed (all are counted).

  Returns:
    `verdict` (a, b), `findings` (added, removed, changed severity,
    unchanged codes), `fingerprint` and `config` (differing fields),
    `coverage` (per component, a and b), and `fates`: `transitions` (from,
    to, count) and `changed` (path, a, b), where ABSENT marks a variable that
    is not in one of the reports.
  """
  va, vb = a.get("verdict") or {}, b.get("verdict") or {}
  fa, fb = _findings_by_code(a), _findings_by_code(b)
  findings = {
    "added": [fb[c] for c in fb if c not in fa],
    "removed": [fa[c] for c in fa if c not in fb],
    "changed": [
      {
        "code": c,
        "title": fb[c].get("title", ""),
        "a": fa[c].get("severity"),
        "b": fb[c].get("severity"),
      }
      for c in fb
      if c in fa and fa[c].get("severity") != fb[c].get("severity")
    ],
    "unchanged": [c for c in fb if c in fa and fa[c].get("severity") == fb[c].get("severity")],
  }
  ca, cb = _coverage(a), _coverage(b)
  coverage = [{"component": c, "a": ca.get(c), "b": cb.get(c)} for c in dict.fromkeys([*ca, *cb])]
  pa = fates(table_a if table_a is not None else variable_table(a))
  pb = fates(table_b if table_b is not None else variable_table(b))
  transitions: dict[tuple[str, str], int] = {}
  changed = []
  for path in pa.keys() | pb.keys():
    x, y = pa.get(path, ABSENT), pb.get(path, ABSENT)
    if x != y:
      transitions[(x, y)] = transitions.get((x, y), 0) + 1
      changed.append((ABSENT in (x, y), path, x, y))
  # Variables in both reports whose fate changed first, then the others.
  changed.sort(key=lambda c: (c[0], key_folding.natural_key(c[1])))
  return {
    "verdict": {
      "a": va.get("decision"),
      "b": vb.get("decision"),
      "reasons_a": list(va.get("reasons") or ()),
      "reasons_b": list(vb.get("reasons") or ()),
    },
    "findings": findings,
    "fingerprint": _differing(
      _flat(a.get("fingerprint"), skip=("evidence",)),
      _flat(b.get("fingerprint"), skip=("evidence",)),
    ),
    "config": _differing(_flat(a.get("config")), _flat(b.get("config"))),
    "checkpoint": {
      "a": (a.get("checkpoint") or {}).get("given"),
      "b": (b.get("checkpoint") or {}).get("given"),
    },
    "coverage": coverage,
    "fates": {
      "transitions": [
        {"from": x, "to": y, "count": n}
        for (x, y), n in sorted(transitions.items(), key=lambda t: -t[1])
      ],
      "changed": [{"path": p, "a": x, "b": y} for _, p, x, y in changed[:limit]],
      "changed_total": len(changed),
      "unchanged": sum(1 for p in pa if p in pb and pa[p] == pb[p]),
    },
  }


def naming_timeline(saves: Iterable[tuple[int, float, Mapping[str, Any]]]) -> dict:
  """Naming checks over training steps, from their headers.

  Args:
    saves: (step, wall_time, header) per save whose checkpoint broke a rule.

  Returns:
    `rules` (every rule broken at some save) and `saves` (step, wall_time,
    checkpoint, violations, by_rule), in step order.
  """
  rows = [
    {
      "step": step,
      "wall_time": wall_time,
      "checkpoint": h.get("checkpoint", ""),
      "violations": h.get("violations", 0),
      "by_rule": dict(h.get("by_rule") or {}),
    }
    for step, wall_time, h in saves
  ]
  rows.sort(key=lambda r: (r["step"], r["wall_time"]))
  rules = sorted({rule for r in rows for rule in r["by_rule"]})
  return {"rules": rules, "saves": rows}
