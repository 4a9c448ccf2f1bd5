"""Property tests of the checkpoint readers: any bytes, and any mutation of a
valid file, give a result or an `OdGuardError`, never another exception.

Bounded for CI (a few dozen examples per reader, a deadline per example);
benchmarks/fuzz.py runs the same kind of mutation 100,000 times per reader.
"""

from __future__ import annotations

import os
import pathlib
import sys
import tempfile

from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
import pytest

from od_guard import errors
from od_guard.checkpoint import keras_files
from od_guard.checkpoint import object_graph
from od_guard.checkpoint import paths as checkpoint_path
from od_guard.checkpoint import tensor_bundle

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent / "data"))
import make_hostile_corpus as corpus

pytestmark = pytest.mark.plain

_SETTINGS = settings(
  max_examples=200,
  deadline=3000,
  derandomize=True,
  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
_SCRATCH = tempfile.mkdtemp(prefix="od_guard_property_")


def _valid_files() -> dict[str, bytes]:
  root = pathlib.Path(_SCRATCH) / "valid"
  corpus.write_checkpoint(root / "ckpt-1", block_size=64)
  corpus.write_checkpoint(root / "snappy-1", snappy=True)
  corpus._keras3_h5(root / "w.weights.h5")
  weights = (root / "w.weights.h5").read_bytes()
  return {
    "index": (root / "ckpt-1.index").read_bytes(),
    "snappy_index": (root / "snappy-1.index").read_bytes(),
    "graph": corpus.base_graph(),
    "h5": weights,
    "keras": corpus._zip_bytes({"metadata.json": b"{}", "model.weights.h5": weights}),
  }


VALID = _valid_files()

# A mutation: (position as a fraction of the length, kind, value).
_EDITS = st.lists(
  st.tuples(
    st.floats(0, 1, allow_nan=False),
    st.sampled_from(["flip", "set", "insert", "delete", "truncate", "varint"]),
    st.integers(0, 255),
  ),
  min_size=1,
  max_size=6,
)


def mutate(data: bytes, edits) -> bytes:
  """Applies structure-blind and varint-aware edits to `data`."""
  b = bytearray(data)
  for where, kind, value in edits:
    if not b:
      break
    i = min(int(where * len(b)), len(b) - 1)
    if kind == "flip":
      b[i] ^= 1 << (value % 8)
    elif kind == "set":
      b[i] = (0, 0x7F, 0x80, 0xFF, value)[value % 5]
    elif kind == "insert":
      b[i:i] = bytes([value]) * (1 + value % 7)
    elif kind == "delete":
      del b[i : i + 1 + value % 7]
    elif kind == "truncate":
      del b[i:]
    else:  # a huge varint where a small one was
      b[i : i + 1] = b"\xff" * (1 + value % 12) + b"\x01"
  return bytes(b)


def _file(name: str, data: bytes) -> str:
  fd, path = tempfile.mkstemp(dir=_SCRATCH, suffix=name)
  with os.fdopen(fd, "wb") as f:
    f.write(data)
  return path


def _typed_or_result(call, *args) -> str:
  """'result' or 'typed' (an OdGuardError with its what and fix); anything else raises."""
  try:
    call(*args)
  except errors.OdGuardError as e:
    assert e.what and e.fix, e
    return "typed"
  return "result"


_OUTCOMES = ("result", "typed")


def _index(data: bytes) -> str:
  """read_index's outcome on a file holding `data`."""
  path = _file(".index", data)
  try:
    return _typed_or_result(tensor_bundle.read_index, path)
  finally:
    os.unlink(path)


@_SETTINGS
@given(st.binary(max_size=600))
def test_index_any_bytes(data):
  assert _index(data) in _OUTCOMES


@_SETTINGS
@given(st.sampled_from(["index", "snappy_index"]), _EDITS)
def test_index_mutated(which, edits):
  assert _index(mutate(VALID[which], edits)) in _OUTCOMES


@_SETTINGS
@given(st.binary(max_size=600))
def test_object_graph_any_bytes(data):
  assert _typed_or_result(object_graph.summarize, data, "x") in _OUTCOMES
  assert _typed_or_result(object_graph.parse, data, "x") in _OUTCOMES


@_SETTINGS
@given(_EDITS)
def test_object_graph_mutated(edits):
  data = mutate(VALID["graph"], edits)
  assert _typed_or_result(object_graph.summarize, data, "x") in _OUTCOMES
  assert _typed_or_result(object_graph.parse, data, "x") in _OUTCOMES


@_SETTINGS
@given(
  st.lists(
    st.tuples(
      st.lists(st.tuples(st.integers(-3, 40), st.text(max_size=5)), max_size=4),
      st.lists(st.tuples(st.text(max_size=5), st.text(max_size=8)), max_size=2),
    ),
    max_size=30,
  )
)
def test_object_graph_random_structure(nodes):
  data = corpus.object_graph(nodes)
  assert _typed_or_result(object_graph.summarize, data, "x") in _OUTCOMES
  assert _typed_or_result(object_graph.parse, data, "x") in _OUTCOMES


def _keras(data: bytes, container: str, suffix: str) -> str:
  """keras_files.read's outcome on a file holding `data`."""
  path = _file(suffix, data)
  try:
    return _typed_or_result(keras_files.read, path, container)
  finally:
    os.unlink(path)


@_SETTINGS
@given(_EDITS)
def test_hdf5_mutated(edits):
  # Metadata sits in the first kilobytes: aim the edits there.
  head = VALID["h5"][:4096]
  data = mutate(head, edits) + VALID["h5"][4096:]
  assert _keras(data, checkpoint_path.KERAS_H5, ".weights.h5") in _OUTCOMES


@_SETTINGS
@given(st.binary(max_size=400))
def test_hdf5_any_bytes(data):
  assert _keras(b"\x89HDF\r\n\x1a\n" + data, checkpoint_path.KERAS_H5, ".weights.h5") in _OUTCOMES


@_SETTINGS
@given(_EDITS)
def test_keras_zip_mutated(edits):
  assert _keras(mutate(VALID["keras"], edits), checkpoint_path.KERAS_ARCHIVE, ".keras") in _OUTCOMES


@_SETTINGS
@given(st.binary(max_size=400))
def test_keras_zip_any_bytes(data):
  assert _keras(b"PK\x03\x04" + data, checkpoint_path.KERAS_ARCHIVE, ".keras") in _OUTCOMES
