"""The TF-free event writer's own pieces equal TensorBoard's."""

from __future__ import annotations

import io
import math

import pytest
from tensorboard.plugins.scalar import summary_v2 as scalar_summary
from tensorboard.plugins.text import summary_v2 as text_summary
from tensorboard.summary.writer import record_writer

from od_guard.report import event_file

pytestmark = pytest.mark.plain


@pytest.mark.parametrize("value", [0.25, 1, 0.1, -3.5, 1e30, math.inf, math.nan, 0])
def test_scalar_summary_is_tensorboards(value):
  ours = event_file.scalar_pb("od_guard/coverage/backbone", value).SerializeToString()
  assert ours == scalar_summary.scalar_pb("od_guard/coverage/backbone", value).SerializeToString()


@pytest.mark.parametrize("text", ["", "héllo", "# report\n| a | b |\n", "\x00\x1b[2J"])
def test_text_summary_is_tensorboards(text):
  ours = event_file.text_pb("od_guard/report", text).SerializeToString()
  assert ours == text_summary.text_pb("od_guard/report", text).SerializeToString()


@pytest.mark.parametrize("size", [0, 1, 11, 4096, 70_000])
def test_record_framing_is_tensorboards(size):
  data = bytes(range(256)) * (size // 256) + bytes(size % 256)
  buf = io.BytesIO()
  record_writer.RecordWriter(buf).write(data)
  assert event_file.record(data) == buf.getvalue()
