"""Writes TensorBoard event files without TensorFlow.

TensorBoard's own `EventFileWriter` resolves `tf.io.gfile` through
`tensorboard.compat.tf`, which imports TensorFlow wherever it is installed; the
CLI's TF-free commands (`od-guard check --static`, `lint`) must not pay for
that. This writes a local event file with TensorBoard's protos and the TFRecord
framing (length, masked CRC-32C, data, masked CRC-32C), which is all an event
file is. The framing is written here, not with `tensorboard.summary.writer`,
whose package import pulls in every summary plugin and numpy (0.3 s, paid by
every drop-in run that stops before TensorFlow).
"""

from __future__ import annotations

from collections.abc import Sequence
import itertools
import os
import socket
import struct
import time

import google_crc32c
from tensorboard.compat.proto import event_pb2
from tensorboard.compat.proto import summary_pb2

from od_guard.checkpoint import proto_wire

_FILE_VERSION = "brain.Event:2"


def _masked_crc(data: bytes) -> bytes:
  """TFRecord's masked CRC-32C of `data`, little-endian."""
  return struct.pack("<I", proto_wire.mask_crc(google_crc32c.value(data)))


def record(data: bytes) -> bytes:
  """One TFRecord: length, its masked CRC, the data, its masked CRC."""
  length = struct.pack("<Q", len(data))
  return length + _masked_crc(length) + data + _masked_crc(data)


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


def _scalar_tensor_summary(tag: str, plugin_metadata, **tensor_fields) -> summary_pb2.Summary:
  """A one-value tensor summary for the plugin whose `metadata` module is given."""
  from tensorboard.compat.proto import tensor_pb2
  from tensorboard.compat.proto import tensor_shape_pb2

  summary = summary_pb2.Summary()
  summary.value.add(
    tag=tag,
    metadata=plugin_metadata.create_summary_metadata(display_name=None, description=None),
    tensor=tensor_pb2.TensorProto(
      tensor_shape=tensor_shape_pb2.TensorShapeProto(), **tensor_fields
    ),
  )
  return summary


def scalar_pb(tag: str, value: float) -> summary_pb2.Summary:
  """What `tensorboard.plugins.scalar.summary_v2.scalar_pb` returns, without its
  import of numpy and TensorBoard's TensorFlow stub (tested equal)."""
  from tensorboard.compat.proto import types_pb2
  from tensorboard.plugins.scalar import metadata

  return _scalar_tensor_summary(tag, metadata, dtype=types_pb2.DT_FLOAT, float_val=[float(value)])


def text_pb(tag: str, text: str) -> summary_pb2.Summary:
  """What `tensorboard.plugins.text.summary_v2.text_pb` returns, without its
  import of numpy and TensorBoard's TensorFlow stub (tested equal)."""
  from tensorboard.compat.proto import types_pb2
  from tensorboard.plugins.text import metadata

  return _scalar_tensor_summary(
    tag, metadata, dtype=types_pb2.DT_STRING, string_val=[text.encode("utf-8")]
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
    f.write(
      record(event_pb2.Event(wall_time=wall_time, file_version=_FILE_VERSION).SerializeToString())
    )
    for summary in summaries:
      event = event_pb2.Event(wall_time=wall_time, step=int(step), summary=summary)
      f.write(record(event.SerializeToString()))
    f.flush()
    os.fsync(f.fileno())
  os.replace(partial, path)
  return path
