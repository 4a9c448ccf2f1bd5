"""Writes TensorBoard event files without TensorFlow.

TensorBoard's own `EventFileWriter` resolves `tf.io.gfile` through
`tensorboard.compat.tf`, which imports TensorFlow wherever it is installed; the
CLI's TF-free commands (`od-guard check --static`, `lint`) must not pay for
that. This writes a local event file with TensorBoard's protos and its record
framing (`RecordWriter`: length, masked CRC-32C, data, masked CRC-32C), which is
all an event file is.
"""

from __future__ import annotations

from collections.abc import Sequence
import itertools
import os
import socket
import time

from tensorboard.compat.proto import event_pb2
from tensorboard.compat.proto import summary_pb2
from tensorboard.summary.writer import record_writer

_FILE_VERSION = "brain.Event:2"
_COUNTER = itertools.count()


def event_file_name(wall_time: float) -> str:
  """A name TensorBoard recognises as an event file, unique per process and
  call; names sort in the order they were written (TensorBoard reads a run's
  files in name order, and a step older than one it has read counts as a
  restart that purges the later ones)."""
  return (
    f"events.out.tfevents.{int(wall_time):010d}.{socket.gethostname()}."
    f"{os.getpid()}.{next(_COUNTER):06d}.od_guard"
  )


def write(logdir: str, summaries: Sequence[summary_pb2.Summary], *, step: int) -> str:
  """Writes `summaries` at `step` into a new event file under the local `logdir`.

  Args:
    logdir: a local directory (created if needed); one TensorBoard run.
    summaries: the summaries to write, one event each.
    step: their step.

  Returns:
    The path of the event file written.
  """
  os.makedirs(logdir, exist_ok=True)
  wall_time = time.time()
  path = os.path.join(logdir, event_file_name(wall_time))
  # Written under a name TensorBoard ignores, then renamed: a TensorBoard that
  # is watching never reads half a file.
  partial = os.path.join(logdir, f".od_guard.{os.getpid()}.{next(_COUNTER)}.partial")
  with open(partial, "wb") as f:
    writer = record_writer.RecordWriter(f)
    writer.write(
      event_pb2.Event(wall_time=wall_time, file_version=_FILE_VERSION).SerializeToString()
    )
    for summary in summaries:
      event = event_pb2.Event(wall_time=wall_time, step=int(step), summary=summary)
      writer.write(event.SerializeToString())
    f.flush()
    os.fsync(f.fileno())
  os.replace(partial, path)
  return path
