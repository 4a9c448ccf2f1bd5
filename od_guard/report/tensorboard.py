"""Writes reports to TensorBoard event files.

A restore report: scalars under ``od_guard/`` (verdict, counts, coverage per
component) and the Markdown report as the text summary ``od_guard/report``.
Naming violations found at a save: ``od_guard/naming/violations`` and the
text ``od_guard/naming/report``, at the save's step. Needs TensorFlow; only
the chief of a multi-worker job should call these.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from od_guard.report import record
from od_guard.report import render
from od_guard.restore import findings
from od_guard.restore import policy as policy_lib


def scalars(report: record.Report) -> dict[str, float]:
  """The numbers logged under od_guard/ in TensorBoard."""
  out = {
    "od_guard/verdict": {policy_lib.PASS: 0.0, policy_lib.WARN: 1.0, policy_lib.FAIL: 2.0}[
      report.verdict.decision
    ],
    "od_guard/count/errors": float(sum(f.severity == findings.ERROR for f in report.findings)),
    "od_guard/count/warnings": float(sum(f.severity == findings.WARNING for f in report.findings)),
  }
  if report.restore is not None:
    r = report.restore
    out.update(
      {
        "od_guard/count/restored": float(len(r.restored)),
        "od_guard/count/missing": float(len(r.missing)),
        "od_guard/count/not_requested": float(len(r.not_requested)),
        "od_guard/count/unused": float(len(r.unused)),
        "od_guard/count/shape_mismatches": float(len(r.shape_mismatches)),
        "od_guard/coverage/total": r.total.fraction,
      }
    )
    for c in r.coverage:
      out[f"od_guard/coverage/{c.component}"] = c.fraction
  return out


def write_summaries(
  logdir: str, *, step: int, scalars: Mapping[str, float] = (), texts: Mapping[str, str] = ()
) -> str:
  """Writes scalar and text summaries to `logdir` at `step`; returns the logdir."""
  import tensorflow as tf

  writer = tf.summary.create_file_writer(logdir)
  with writer.as_default():
    for tag, value in dict(scalars).items():
      tf.summary.scalar(tag, value, step=step)
    for tag, text in dict(texts).items():
      tf.summary.text(tag, text, step=step)
  writer.flush()
  writer.close()
  return logdir


def write(report: record.Report, logdir: str, *, step: int = 0) -> str:
  """Writes `report` to `logdir` at `step`; returns the logdir."""
  return write_summaries(
    logdir,
    step=step,
    scalars=scalars(report),
    texts={"od_guard/report": render.render_markdown(report)},
  )


def naming_markdown(violations: Sequence, path: str, *, limit: int = 200) -> str:
  """The Markdown table of naming violations found in the checkpoint `path`."""
  rows = "\n".join(f"| `{v.path}` | {v.rule} | {v.message} |" for v in violations[:limit])
  return (
    f"**{len(violations)} naming violation(s)** in `{path}`\n\n"
    f"| path | rule | message |\n|---|---|---|\n{rows}"
  )


def write_naming(violations: Sequence, path: str, logdir: str, *, step: int = 0) -> str:
  """Writes the naming violations found at a save to `logdir` at `step`."""
  return write_summaries(
    logdir,
    step=step,
    scalars={"od_guard/naming/violations": float(len(violations))},
    texts={"od_guard/naming/report": naming_markdown(violations, path)},
  )
