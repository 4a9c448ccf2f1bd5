"""`od-guard verify`'s outputs: the terminal text (a table per group of saved
values, then the findings) and the JSON document (schema od_guard.verify/1)."""

from __future__ import annotations

from collections.abc import Sequence

from od_guard.checkpoint import limits
from od_guard.checkpoint import verify as verify_lib
from od_guard.restore import decide
from od_guard.restore import findings as findings_lib

_MARK = {findings_lib.ERROR: "[x]", findings_lib.WARNING: "[!]", findings_lib.INFO: "[i]"}


def render_text(report: verify_lib.VerifyResult, found: Sequence[findings_lib.Finding]) -> str:
  """Renders a verification and its findings.

  Args:
    report: the verification.
    found: `restore.value_health.diagnose(report)`.
  """
  problems = [f for f in found if f.severity != findings_lib.INFO]
  errors = sum(f.severity == findings_lib.ERROR for f in found)
  state = (
    "HEALTHY"
    if not problems
    else f"FINDINGS ({errors} error(s), {len(problems) - errors} warning(s))"
  )
  mb = report.bytes_read / 1e6
  rate = mb / report.seconds if report.seconds > 0 else 0.0
  lines = [
    f"od-guard verify: {report.prefix}: {state}",
    f"{len(report.tensors)} tensors, {mb:,.1f} MB read in {report.seconds:.2f} s "
    f"({rate:,.0f} MB/s); CRC32C checked against every tensor's stored checksum",
    "",
    f"{'group':<24} {'tensors':>8} {'damaged':>8} {'NaN':>8} {'Inf':>8} {'zero':>6} "
    f"{'const':>6} {'var<=0':>6}",
  ]
  for group, c in sorted(report.summary().items()):
    lines.append(
      f"{group:<24} {c['tensors']:>8} {c['damaged']:>8} {c['nan']:>8} {c['inf']:>8} "
      f"{c['all_zero']:>6} {c['constant']:>6} {c['nonpositive_variance']:>6}"
    )
  not_checked = [t for t in report.tensors if t.status == verify_lib.NOT_CHECKED]
  if not_checked:
    lines += [
      "",
      f"[i] {len(not_checked)} tensor(s) not checked, e.g. {not_checked[0].key!r}: "
      f"{not_checked[0].detail} (not damage: od_guard does not read these bytes)",
    ]
  for f in findings_lib.by_severity(found):
    if f.severity == findings_lib.INFO and f.code not in decide.SHOWN_WHEN_QUIET["verify"]:
      continue
    lines += ["", f"{_MARK[f.severity]} {f.title}  ({f.code})"]
    if f.detail:
      lines += ["    " + line for line in f.detail.splitlines()]
    if f.fix:
      lines.append(f"    fix: {f.fix}")
  # Keys come from the checkpoint: no control character reaches the terminal raw.
  return "\n".join(map(limits.printable, lines))


def to_dict(
  report: verify_lib.VerifyResult,
  found: Sequence[findings_lib.Finding],
  *,
  with_tensors: bool = False,
) -> dict:
  """The JSON document of a verification and its findings.

  Args:
    report: the verification.
    found: its findings (`restore.value_health.diagnose`).
    with_tensors: every tensor's record, not only the bad ones.
  """
  payload = report.to_dict(with_tensors=with_tensors)
  payload["findings"] = [f.to_dict() for f in found]
  return payload
