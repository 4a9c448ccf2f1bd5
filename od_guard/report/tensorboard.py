"""Writes reports to TensorBoard event files.

A restore report: scalars under ``od_guard/`` (verdict, counts, coverage per
component) and the Markdown report as the text summary ``od_guard/report``.
Naming violations found at a save: ``od_guard/naming/violations`` and the
text ``od_guard/naming/report``, at the save's step. A checkpoint verification
(``od_guard.verify/1``): ``od_guard/verify/{damaged,unhealthy}`` and the text
``od_guard/verify/report``. Beside them, each report
goes whole to the od_guard dashboard (`od_guard.report.dashboard`: a summary
its plugin owns; the scalars and Markdown show where the plugin is absent).
With TensorFlow already imported (or a remote logdir) the summaries go through
tf.summary; otherwise through TensorBoard's protos and record framing, so the
TF-free commands never import TensorFlow. Only the chief of a multi-worker job
should call these.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
import sys
from typing import Any

from od_guard.checkpoint import fileio
from od_guard.report import event_file
from od_guard.report import record
from od_guard.report import render
from od_guard.report.dashboard import metadata as dashboard_metadata
from od_guard.report.dashboard import summary as dashboard_summary
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
  logdir: str,
  *,
  step: int,
  scalars: Mapping[str, float] = (),
  texts: Mapping[str, str] = (),
  records: Mapping[str, tuple[str, Mapping[str, Any]]] = (),
) -> str:
  """Writes scalar and text summaries to `logdir` at `step`; returns the logdir.

  `records` maps a tag to (kind, JSON-able record) for the od_guard dashboard.
  """
  if "tensorflow" not in sys.modules and not fileio.is_remote(logdir):
    event_file.write(
      fileio.local(logdir),
      [event_file.scalar_pb(tag, value) for tag, value in dict(scalars).items()]
      + [event_file.text_pb(tag, text) for tag, text in dict(texts).items()]
      + [
        dashboard_summary.record_pb(tag, data, kind=kind)
        for tag, (kind, data) in dict(records).items()
      ],
      step=step,
    )
    return logdir
  import tensorflow as tf

  writer = tf.summary.create_file_writer(logdir)
  with writer.as_default():
    for tag, value in dict(scalars).items():
      tf.summary.scalar(tag, value, step=step)
    for tag, text in dict(texts).items():
      tf.summary.text(tag, text, step=step)
    for tag, (kind, data) in dict(records).items():
      dashboard_summary.record(tag, data, kind=kind, step=step)
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
    records={
      dashboard_metadata.TAGS[dashboard_metadata.PREFLIGHT]: (
        dashboard_metadata.PREFLIGHT,
        report.to_dict(),
      )
    },
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
    records={
      dashboard_metadata.TAGS[dashboard_metadata.NAMING]: (
        dashboard_metadata.NAMING,
        dashboard_summary.naming_record(violations, path),
      )
    },
  )


def verification_markdown(result: Mapping[str, Any], *, limit: int = 50) -> str:
  """The Markdown summary of a checkpoint verification (`od_guard.verify/1`)."""
  bad = [*(result.get("damaged") or ()), *(result.get("unhealthy") or ())]
  rows = "\n".join(
    f"| `{t.get('path') or t.get('key')}` | {t.get('status')} | {t.get('nan', 0)} | "
    f"{t.get('inf', 0)} | {t.get('detail', '')} |"
    for t in bad[:limit]
  )
  state = "healthy" if result.get("healthy") else "NOT healthy"
  return (
    f"**{result.get('prefix', '')}: {state}** ({len(result.get('damaged') or ())} damaged, "
    f"{len(result.get('unhealthy') or ())} unhealthy)\n\n"
    f"| path | status | NaN | Inf | detail |\n|---|---|---|---|---|\n{rows}"
  )


def write_verification(result, logdir: str, *, step: int = 0) -> str:
  """Writes a checkpoint verification to `logdir` at `step`; returns the logdir.

  Args:
    result: a `checkpoint.verify.VerifyResult` or its `to_dict()`.
    logdir: the run's directory.
    step: the step (e.g. of the checkpoint verified).
  """
  data = result.to_dict() if hasattr(result, "to_dict") else dict(result)
  return write_summaries(
    logdir,
    step=step,
    scalars={
      "od_guard/verify/damaged": float(len(data.get("damaged") or ())),
      "od_guard/verify/unhealthy": float(len(data.get("unhealthy") or ())),
    },
    texts={"od_guard/verify/report": verification_markdown(data)},
    records={
      dashboard_metadata.TAGS[dashboard_metadata.VERIFICATION]: (
        dashboard_metadata.VERIFICATION,
        data,
      )
    },
  )
