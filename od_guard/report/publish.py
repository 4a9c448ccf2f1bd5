"""Where an integration's report goes once its verdict is in: the terminal,
report files, TensorBoard. One function, so that the OD API drop-in and the
Keras guard show and keep a report alike."""

from __future__ import annotations

import json
import os

from od_guard.checkpoint import fileio
from od_guard.report import record
from od_guard.report import render


def publish(
  report: record.Report,
  *,
  chief: bool = True,
  quiet: bool = False,
  json_path: str | None = None,
  text_path: str | None = None,
  log_dir: str | None = None,
) -> None:
  """Prints `report` and, on the chief, writes it where asked.

  Args:
    report: the report to publish.
    chief: whether this process is the chief of its job; only the chief writes.
    quiet: do not print the text report.
    json_path: the JSON report (schema od_guard.preflight/1), written atomically.
    text_path: the verbose text report, written atomically.
    log_dir: a TensorBoard log directory: the report goes to its 'train' run, at step 0.
  """
  if not quiet:
    print(render.render_text(report), flush=True)
  if not chief:
    return
  if json_path:
    fileio.atomic_write_text(json_path, json.dumps(report.to_dict(), indent=2) + "\n")
  if text_path:
    fileio.atomic_write_text(text_path, render.render_text(report, verbose=True) + "\n")
  if log_dir:
    from od_guard.report import tensorboard  # TensorBoard's protos load only when asked

    tensorboard.write(report, os.path.join(log_dir, "train"), step=0)
