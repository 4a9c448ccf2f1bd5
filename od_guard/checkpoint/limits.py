"""The limits od_guard's readers hold every checkpoint file to.

Every length, offset, count and depth read from a file is checked against the
file's size and against these limits before it is used, so that no file, however
damaged or hostile, makes a reader allocate, loop or recurse without bound. A
value beyond a limit raises `CorruptCheckpointError` naming the limit. The values
are far above what TensorFlow, Keras and the OD API write (docs/guarantees.md, "Limits").
"""

from __future__ import annotations

from collections.abc import Iterator
import contextlib
import os
import re
import sys

# A protobuf / LevelDB varint: at most 10 bytes, a value below 2**64.
MAX_VARINT_BYTES = 10
# Saved values in one tensor-bundle index.
MAX_ENTRIES = 10_000_000
# Data shards one index may name (`num_shards` of its header).
MAX_SHARDS = 100_000
# Dimensions of one saved tensor (TensorFlow's own limit, TensorShape's kMaxDims).
MAX_DIMS = 254
# Elements of one saved tensor: what an int64 holds, as in TensorFlow.
MAX_ELEMENTS = (1 << 63) - 1
# Bytes of one checkpoint key.
MAX_KEY_BYTES = 1 << 16
# Bytes of a file offset or size read from a file.
MAX_FILE_BYTES = 1 << 62
# Bytes of the serialized object graph (and any string tensor read whole).
MAX_OBJECT_GRAPH_BYTES = 1 << 28
# Nodes of the object graph, and its depth (the longest shortest path from the root).
MAX_OBJECT_GRAPH_NODES = 10_000_000
MAX_OBJECT_GRAPH_DEPTH = 1_000
# Groups and datasets of an HDF5 weights file, its depth, and the bytes of one
# attribute read (Keras 2's `layer_names` / `weight_names`).
MAX_HDF5_OBJECTS = 1_000_000
MAX_HDF5_DEPTH = 64
MAX_HDF5_ATTRIBUTE_BYTES = 64 << 20
# A `.keras` archive's weights member: stored members are read in place, at any
# size; a compressed one is decompressed (to a temporary file) only up to this
# size and this ratio of its compressed size.
MAX_ZIP_MEMBER_BYTES = 1 << 30
MAX_ZIP_EXPANSION = 200
# The memory the HDF5 library may allocate (above what the process has mapped)
# while it reads a file's metadata: HDF5 sizes some allocations from the file,
# so a damaged file could otherwise make it allocate, and touch, gigabytes.
HDF5_ADDRESS_SPACE = 192 << 20
# The prefix depth `od-guard inspect --depth` accepts.
MAX_INSPECT_DEPTH = 100
# Digits of a number in a name that sorting and folding read as a number.
MAX_NUMBER_DIGITS = 18
# Numbers printed in full; larger ones print as "> 10^100".
MAX_PRINTED = 10**100

# Control characters (C0, DEL, C1) and the bidirectional overrides that can
# rewrite what a terminal shows.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
  """`text` with its control characters escaped (``\\x1b``), for a terminal."""
  if text.isascii() and text.isprintable():
    return text
  return _UNPRINTABLE.sub(lambda m: repr(m.group())[1:-1], text)


def count_text(n: int, spec: str = ",") -> str:
  """An integer formatted with `spec`, or "> 10^100" when it is larger than that."""
  if -MAX_PRINTED < n < MAX_PRINTED:
    return format(n, spec)
  return "> 10^100" if n > 0 else "< -10^100"


def check_shape(shape: tuple[int, ...]) -> str:
  """'' when `shape` is within the limits, else what is wrong with it.

  Dimensions are >= -1 (-1: unknown), at most MAX_DIMS of them, and their
  product at most MAX_ELEMENTS.
  """
  if len(shape) > MAX_DIMS:
    return f"a shape of {len(shape)} dimensions (the limit is {MAX_DIMS})"
  elements = 1
  for d in shape:
    if d < -1 or d > MAX_ELEMENTS:
      return f"a dimension of {count_text(d)}"
    if d > 0:
      elements *= d
      if elements > MAX_ELEMENTS:
        return f"a shape of more than {MAX_ELEMENTS:,} elements (the int64 limit)"
  return ""


def _mapped_bytes() -> int | None:
  try:
    with open("/proc/self/statm", "rb") as f:
      return int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
  except (OSError, ValueError, IndexError):
    return None


@contextlib.contextmanager
def bounded_address_space(extra: int) -> Iterator[None]:
  """Caps the process's address space at what it has mapped plus `extra` bytes
  for the duration (Linux; elsewhere, and where a tighter cap is set, a no-op).

  For native code (HDF5) that sizes allocations from a file: an allocation
  beyond the cap fails (HDF5 reports it, h5py raises) instead of growing the
  process until the kernel kills it. The cap is process-wide, so it is not set
  where a framework whose threads allocate in the background is loaded
  (TensorFlow, PyTorch, JAX): there a failed allocation could be theirs.
  """
  try:
    import resource
  except ImportError:  # pragma: no cover  # not POSIX
    yield
    return
  if any(m in sys.modules for m in ("tensorflow", "torch", "jax")):
    yield
    return
  mapped = _mapped_bytes()
  if mapped is None:
    yield
    return
  soft, hard = resource.getrlimit(resource.RLIMIT_AS)
  cap = mapped + extra
  if hard != resource.RLIM_INFINITY:
    cap = min(cap, hard)
  if soft != resource.RLIM_INFINITY and soft <= cap:
    yield
    return
  try:
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
  except (ValueError, OSError):
    yield
    return
  try:
    yield
  finally:
    resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
