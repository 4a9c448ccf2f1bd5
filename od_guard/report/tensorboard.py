"""Writes a preflight report to TensorBoard event files.

Scalars under ``od_guard/`` (verdict, counts, coverage per component) and the
Markdown report as a text summary ``od_guard/report``, at one step (0 before
training). Needs TensorFlow; only the chief of a multi-worker job should call it.
"""

from __future__ import annotations

from od_guard.report import record as preflight_report


def write(report: preflight_report.PreflightReport, logdir: str, *, step: int = 0) -> str:
  """Writes `report` to `logdir` at `step`; returns the logdir."""
  import tensorflow as tf

  writer = tf.summary.create_file_writer(logdir)
  with writer.as_default():
    for tag, value in preflight_report.scalars(report).items():
      tf.summary.scalar(tag, value, step=step)
    tf.summary.text("od_guard/report", preflight_report.render_markdown(report), step=step)
  writer.flush()
  writer.close()
  return logdir
