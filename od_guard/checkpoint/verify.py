"""Integrity and value health of every saved tensor, streamed once, without
TensorFlow.

For each tensor of a TF checkpoint's data shards, in file order and in chunks
(memory stays at one chunk whatever the checkpoint's size):

* integrity: the stored CRC32C (masked, as TensorFlow computes it) against the
  bytes, the tensor's offset and size against its shard's size;
* health of numeric values: NaN and Inf counts, all-zero and constant
  tensors, the largest finite magnitude, and batch-norm moving variances that
  are not positive.

    report = verify.verify("train/ckpt-3")
    report.damaged()     # tensors whose bytes are not what was saved
    report.unhealthy()   # tensors with NaN / Inf, or non-positive variances

Numbers are read with numpy views over the bytes: nothing is unpickled,
nothing executed. CRCs use the CPU's CRC32 instruction through `crc32c` when
it is installed, else the C-accelerated `google_crc32c` (`crc_backend`). One
thread reads ahead while the calling thread checks (`_ReadAhead`).

With `digests=True` the same stream also yields each numeric tensor's
fingerprint of its raw bytes (`Digest`), the one
`od_guard.restore.replica_values` computes on the accelerator from a live
variable: a restore is then verified bit for bit with a few bytes per variable.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
import dataclasses
import time

from od_guard import errors
from od_guard.checkpoint import fileio
from od_guard.checkpoint import inventory as inventory_lib
from od_guard.checkpoint import kinds
from od_guard.checkpoint import limits
from od_guard.checkpoint import proto_wire
from od_guard.checkpoint import tensor_bundle

SCHEMA = "od_guard.verify/1"
OK = "ok"
CRC_MISMATCH = "crc_mismatch"
TRUNCATED = "truncated"  # the shard ends before the tensor does
SHARD_MISSING = "shard_missing"
NOT_CHECKED = "not_checked"  # sliced variables: their bytes are slices
_CHUNK = 4 << 20  # a multiple of every item size
_DEPTH = 3  # chunks read ahead of the checks
_FLOATS = ("float16", "float32", "float64", "bfloat16")
_INTS = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "bool")
_VARIANCE_LEAVES = ("moving_variance", "moving_var")

# The fingerprint of a tensor's bytes. Each element is read as the integer of
# its own width (floats by their bits, sign-extended; unsigned zero-extended;
# bool 0/1) and widened to int64; then, with wrapping int64 arithmetic and i
# the element's index:
#   s1 = sum(x_i)            any change of one element changes it
#   s2 = sum((i + 1) * x_i)  moved or swapped elements
#   s3 = sum(mix(x_i + (i + 1) * DIGEST_K)), mix(v) = (v ^ (v >> 31)) * DIGEST_M
#        (arithmetic shift): non-linear, so that changes cancelling in s1 and
#        s2 do not cancel here.
DIGEST_K = 0x9E3779B97F4A7C15 - (1 << 64)
DIGEST_M = 0xBF58476D1CE4E5B9 - (1 << 64)
DIGEST_WIDTH = {
  "float16": "<i2",
  "bfloat16": "<i2",
  "int16": "<i2",
  "uint16": "<u2",
  "float32": "<i4",
  "int32": "<i4",
  "uint32": "<u4",
  "float64": "<i8",
  "int64": "<i8",
  "uint64": "<i8",
  "int8": "<i1",
  "uint8": "<u1",
  "bool": "<u1",
}
_MASK = (1 << 64) - 1


@dataclasses.dataclass(frozen=True)
class Digest:
  """The fingerprint of one tensor's bytes (see DIGEST_WIDTH's comment).

  Attributes:
    elements: the number of elements.
    s1, s2, s3: the three wrapping int64 sums, as signed Python ints.
  """

  elements: int
  s1: int
  s2: int
  s3: int


def _signed(v: int) -> int:
  v &= _MASK
  return v - (1 << 64) if v >> 63 else v


class _Digester:
  """A `Digest` computed chunk by chunk, the element index running on."""

  def __init__(self, dtype: str):
    self.width = DIGEST_WIDTH[dtype]
    self.n = self.s1 = self.s2 = self.s3 = 0

  def add(self, np, raw: bytes) -> None:
    x = np.frombuffer(raw, dtype=self.width).astype(np.int64)
    if not x.size:
      return
    i1 = np.arange(self.n + 1, self.n + 1 + x.size, dtype=np.int64)
    with np.errstate(over="ignore"):
      v = x + i1 * np.int64(DIGEST_K)
      v = (v ^ (v >> np.int64(31))) * np.int64(DIGEST_M)
      self.s1 = (self.s1 + int(x.sum())) & _MASK
      self.s2 = (self.s2 + int((x * i1).sum())) & _MASK
      self.s3 = (self.s3 + int(v.sum())) & _MASK
    self.n += x.size

  def digest(self) -> Digest:
    return Digest(self.n, _signed(self.s1), _signed(self.s2), _signed(self.s3))


def digest_bytes(raw: bytes, dtype: str) -> Digest:
  """The fingerprint of a whole tensor's little-endian bytes.

  Raises:
    KeyError: `dtype` is not numeric (strings, resources, complex).
  """
  import numpy as np

  d = _Digester(dtype)
  d.add(np, raw)
  return d.digest()


@dataclasses.dataclass(frozen=True)
class TensorHealth:
  """What one saved tensor holds.

  Attributes:
    key, path, kind, component, dtype, shape: as in the inventory.
    status: OK, CRC_MISMATCH, TRUNCATED, SHARD_MISSING or NOT_CHECKED.
    nan, inf: counts of NaN and infinite elements (floats only).
    max_abs: the largest finite magnitude (None for non-numeric or empty).
    all_zero: every element is zero.
    constant: every element has the same value (more than one element).
    nonpositive_variance: a batch-norm moving variance with an element <= 0.
    detail: what is wrong, in words ('' when OK).
  """

  key: str
  path: str
  kind: str
  component: str
  dtype: str
  shape: tuple[int, ...]
  status: str = OK
  nan: int = 0
  inf: int = 0
  max_abs: float | None = None
  all_zero: bool = False
  constant: bool = False
  nonpositive_variance: bool = False
  detail: str = ""

  @property
  def damaged(self) -> bool:
    return self.status in (CRC_MISMATCH, TRUNCATED, SHARD_MISSING)

  @property
  def unhealthy(self) -> bool:
    return bool(self.nan or self.inf or self.nonpositive_variance)

  def to_dict(self) -> dict:
    d = dataclasses.asdict(self)
    d["shape"] = list(self.shape)
    return d


@dataclasses.dataclass(frozen=True)
class VerifyResult:
  """Every tensor's integrity and health.

  Attributes:
    prefix: the checkpoint prefix.
    tensors: one record per saved tensor, in key order.
    bytes_read: bytes read from the data shards.
    seconds: wall time of the scan.
    digests: key -> `Digest` of every numeric tensor read intact (only with
      `verify(..., digests=True)`; not part of `to_dict`).
  """

  prefix: str
  tensors: tuple[TensorHealth, ...]
  bytes_read: int
  seconds: float
  digests: dict[str, Digest] = dataclasses.field(default_factory=dict)

  def damaged(self) -> list[TensorHealth]:
    return [t for t in self.tensors if t.damaged]

  def unhealthy(self) -> list[TensorHealth]:
    return [t for t in self.tensors if t.unhealthy]

  @property
  def healthy(self) -> bool:
    return not self.damaged() and not self.unhealthy()

  def summary(self) -> dict[str, dict[str, int]]:
    """Counts per group ('model/backbone', 'optimizer_slot', ...)."""
    out: dict[str, dict[str, int]] = {}
    for t in self.tensors:
      group = f"model/{t.component}" if t.kind == kinds.MODEL else t.kind
      c = out.setdefault(
        group,
        {"tensors": 0, "damaged": 0, "nan": 0, "inf": 0, "all_zero": 0, "constant": 0,
         "nonpositive_variance": 0},
      )  # fmt: skip
      c["tensors"] += 1
      c["damaged"] += t.damaged
      c["nan"] += t.nan
      c["inf"] += t.inf
      c["all_zero"] += t.all_zero
      c["constant"] += t.constant
      c["nonpositive_variance"] += t.nonpositive_variance
    return out

  def to_dict(self, *, with_tensors: bool = False) -> dict:
    d = {
      "schema": SCHEMA,
      "prefix": self.prefix,
      "healthy": self.healthy,
      "bytes_read": self.bytes_read,
      "seconds": round(self.seconds, 4),
      "summary": self.summary(),
      "damaged": [t.to_dict() for t in self.damaged()],
      "unhealthy": [t.to_dict() for t in self.unhealthy()],
    }
    if with_tensors:
      d["tensors"] = [t.to_dict() for t in self.tensors]
    return d


class _Stats:
  """Running value statistics of one tensor, chunk by chunk."""

  def __init__(self, dtype: str):
    self.dtype = dtype
    self.nan = self.inf = 0
    self.lo: float | None = None
    self.hi: float | None = None
    self.max_abs: float | None = None

  def add(self, np, raw: bytes) -> None:
    values = _as_numbers(np, raw, self.dtype)
    if values is None or not values.size:
      return
    lo, hi = values.min(), values.max()
    if self.dtype in _FLOATS and not (np.isfinite(lo) and np.isfinite(hi)):
      # The rare path: count, then keep the finite values' range.
      nan = np.isnan(values)
      inf = np.isinf(values)
      self.nan += int(nan.sum())
      self.inf += int(inf.sum())
      finite = values[~(nan | inf)]
      if not finite.size:
        return  # no finite value in this chunk: the range stays as it was
      lo, hi = finite.min(), finite.max()
    lo, hi = float(lo), float(hi)
    self.lo = lo if self.lo is None else min(self.lo, lo)
    self.hi = hi if self.hi is None else max(self.hi, hi)
    self.max_abs = max(abs(self.lo), abs(self.hi))


def _as_numbers(np, raw: bytes, dtype: str):
  if dtype == "bfloat16":
    return (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
  if dtype in _FLOATS or dtype in _INTS:
    return np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("<"))
  return None  # strings, complex, resources: integrity only


def _health(v: inventory_lib.Variable, stats: _Stats | None, status: str, detail: str):
  if stats is None or status != OK:
    return TensorHealth(
      v.key, v.path, v.kind, v.component, v.dtype, v.shape, status=status, detail=detail
    )
  elements = 1
  for d in v.shape:
    elements *= d
  lo, hi = stats.lo, stats.hi
  known = lo is not None and lo == lo  # not NaN: some finite value was seen
  leaf = v.path.rsplit("/", 1)[-1]
  return TensorHealth(
    v.key,
    v.path,
    v.kind,
    v.component,
    v.dtype,
    v.shape,
    nan=stats.nan,
    inf=stats.inf,
    max_abs=stats.max_abs if known else None,
    all_zero=known and lo == 0 and hi == 0 and not stats.nan and not stats.inf,
    constant=known and elements > 1 and lo == hi and not stats.nan and not stats.inf,
    nonpositive_variance=known and leaf in _VARIANCE_LEAVES and lo <= 0,
  )


CRC_BACKEND_ENV = "OD_GUARD_CRC32C"


def crc_backend() -> tuple[Callable[[int, bytes], int], str]:
  """The CRC32C that streams the tensors: (extend(crc, data) -> crc, its name).

  The `crc32c` package (optional: `pip install 'od_guard[fast]'`) when it is
  installed and uses the CPU's CRC32 instruction: about 1.6x google-crc32c's
  speed on data that just came from another core, which is what the
  read-ahead thread hands over. Else `google-crc32c` (a dependency). Both give
  the same value. OD_GUARD_CRC32C=google forces google-crc32c.
  """
  import os

  if os.environ.get(CRC_BACKEND_ENV, "").lower() != "google":
    try:
      import crc32c
    except ImportError:
      pass
    else:
      if crc32c.hardware_based:
        calculate = crc32c.crc32c
        return (lambda crc, data: calculate(data, crc)), "crc32c"
  import google_crc32c

  return google_crc32c.extend, "google-crc32c"


def _string_crc(raw: bytes, elements: int) -> int | None:
  """The masked CRC TensorFlow stores for a string tensor: the lengths (each as
  uint32, or uint64 when large), the stored checksum of the lengths, the bytes."""
  import google_crc32c

  pos, crc, lengths = 0, 0, []
  try:
    for _ in range(elements):
      n, pos = proto_wire.decode_varint(raw, pos)
      lengths.append(n)
      crc = google_crc32c.extend(crc, n.to_bytes(4 if n <= 0xFFFFFFFF else 8, "little"))
  except (IndexError, ValueError, errors.CorruptCheckpointError):
    return None
  crc = google_crc32c.extend(crc, bytes(raw[pos : pos + 4]))
  crc = google_crc32c.extend(crc, bytes(raw[pos + 4 : pos + 4 + sum(lengths)]))
  return proto_wire.mask_crc(crc)


class _ReadAhead:
  """Reads byte ranges of one open shard on a thread of its own, a few chunks
  ahead of the calling thread, which checks them.

  The reading thread only reads (copying from the page cache, without the
  GIL); the calling thread computes the CRC32C and the value statistics
  meanwhile. (Measured: taking min and max on the reading thread, while the
  chunk is in its core's cache, is slower.) Memory stays at `_DEPTH` + 2
  chunks whatever the shard's size.

  `next()` returns (chunk, end): `end` is None while the range has
  more chunks, else how many of its bytes the file lacked (0 when complete);
  a range whose dtype is None (a string tensor) is asked for in one read.
  """

  def __init__(self, f, ranges: list[tuple[int, int, str | None]], chunk_bytes: int, name: str):
    import queue
    import threading

    self._name = name
    self._queue: queue.Queue = queue.Queue(_DEPTH)
    self._full = queue.Full
    self._stop = threading.Event()
    self._thread = threading.Thread(
      target=self._read, args=(f, ranges, chunk_bytes), name="od_guard-verify-read", daemon=True
    )
    self._thread.start()

  def _read(self, f, ranges, chunk_bytes: int) -> None:
    try:
      for offset, size, dtype in ranges:
        f.seek(offset)
        left = size
        while not self._stop.is_set():
          chunk = f.read(min(left, chunk_bytes) if dtype else left) if left else b""
          left -= len(chunk)
          last = not chunk or not left
          self._put((chunk, left if last else None))
          if last:
            break
    except BaseException as e:  # handed to the checking thread, raised there
      self._put(e)

  def _put(self, item) -> None:
    while not self._stop.is_set():
      try:
        self._queue.put(item, timeout=0.1)
        return
      except self._full:
        continue

  def next(self) -> tuple[bytes, int | None]:
    item = self._queue.get()
    if isinstance(item, BaseException):
      if isinstance(item, errors.OdGuardError):
        raise item
      detail = item.strerror if isinstance(item, OSError) and item.strerror else item
      raise errors.UnreadableFileError(
        f"Reading {self._name!r} failed: {type(item).__name__}: {detail}.",
        received=self._name,
        fix="Check the disk or the storage the checkpoint is on, then run verify again.",
      ) from item
    return item

  def close(self) -> None:
    """Stops the reading thread (also when the checks stopped early)."""
    self._stop.set()
    self._thread.join()


def verify(
  path: str,
  *,
  keys: Collection[str] | None = None,
  chunk_bytes: int = _CHUNK,
  progress: Callable[[int, int], None] | None = None,
  digests: bool = False,
) -> VerifyResult:
  """Streams every tensor (or those in `keys`) of a TF checkpoint once.

  Args:
    path: a checkpoint prefix, its .index file, or anything `read_inventory`
      resolves to a TF checkpoint.
    keys: only these checkpoint keys (the values a restore will assign).
    chunk_bytes: bytes read at a time (memory use); rounded to 16.
    progress: called with (bytes done, bytes total) after each chunk.
    digests: also fingerprint every numeric tensor's bytes (`Digest`), from
      the same stream.

  Returns:
    The report; damage is reported per tensor, never raised.

  Raises:
    OdGuardError: the path names no readable TF checkpoint index, or a Keras
      file (whose values this does not stream).
  """
  start = time.perf_counter()
  inv = inventory_lib.read_inventory(path, object_graph=inventory_lib.OBJECT_GRAPH_NONE)
  if inv.format in (inventory_lib.KERAS3_WEIGHTS, inventory_lib.KERAS2_HDF5):
    raise errors.UsageError(
      "verify streams TensorFlow checkpoints; this is a Keras weights file.",
      received=f"{inv.prefix} ({inv.format})",
      fix="Pass a TF checkpoint prefix (e.g. train/ckpt-3).",
    )
  index = tensor_bundle.read_index(inv.prefix + ".index")
  by_key = {v.key: v for v in inv.variables}
  for e in index.entries:  # the object graph: checked for integrity too
    if e.key not in by_key:
      by_key[e.key] = inventory_lib.Variable(
        e.key, e.key, "", kinds.BOOKKEEPING, "other", e.shape, e.dtype, e.size
      )
  entries = [e for e in index.entries if keys is None or e.key in keys]
  scan = _Scan(
    chunk_bytes=max(16, chunk_bytes - chunk_bytes % 16),
    total=sum(e.size for e in entries),
    progress=progress,
    digests=digests,
  )
  num_shards = index.header.num_shards
  for shard in sorted({e.shard_id for e in entries}):
    shard_file = tensor_bundle.shard_path(inv.prefix, shard, num_shards)
    in_shard = sorted((e for e in entries if e.shard_id == shard), key=lambda e: e.offset)
    planned = _plan(shard_file, [(e, by_key[e.key]) for e in in_shard], scan.results)
    if planned:
      _stream(shard_file, planned, scan)
  tensors = tuple(scan.results[k] for k in sorted(scan.results))
  return VerifyResult(inv.prefix, tensors, scan.done, time.perf_counter() - start, scan.digested)


@dataclasses.dataclass
class _Scan:
  """A verification under way: its settings, progress and results so far."""

  chunk_bytes: int
  total: int
  progress: Callable[[int, int], None] | None
  digests: bool
  done: int = 0
  results: dict = dataclasses.field(default_factory=dict)  # key -> TensorHealth
  digested: dict = dataclasses.field(default_factory=dict)  # key -> Digest


def _plan(shard_file: str, in_shard: list, results: dict) -> list:
  """The (entry, variable) pairs of one shard whose bytes are read; the others
  get their result here (shard missing, truncated, sliced, too large)."""
  if not fileio.exists(shard_file):
    for e, v in in_shard:
      results[e.key] = _health(v, None, SHARD_MISSING, f"{shard_file} is missing")
    return []
  try:
    size = fileio.getsize(shard_file)
  except OSError as err:  # a dangling symlink, a symlink loop
    for e, v in in_shard:
      results[e.key] = _health(
        v, None, SHARD_MISSING, f"{shard_file} cannot be read: {err.strerror or err}"
      )
    return []
  planned = []
  for e, v in in_shard:
    if e.sliced:
      results[e.key] = _health(v, None, NOT_CHECKED, "a sliced (partitioned) variable")
    elif e.offset + e.size > size:
      results[e.key] = _health(
        v, None, TRUNCATED, f"bytes {e.offset}..{e.offset + e.size} of a {size:,}-byte shard"
      )
    elif v.dtype == "string" and e.size > limits.MAX_OBJECT_GRAPH_BYTES:
      results[e.key] = _health(
        v,
        None,
        NOT_CHECKED,
        f"a string tensor of {e.size:,} bytes (read whole only"
        f" up to {limits.MAX_OBJECT_GRAPH_BYTES:,})",
      )
    else:
      planned.append((e, v))
  return planned


def _stream(shard_file: str, planned: list, scan: _Scan) -> None:
  """The hot loop: every planned tensor's bytes, read ahead on a thread in
  chunks, checked against its CRC32C and summarised (`_Stats`, `_Digester`)
  on this one, each byte once."""
  import numpy as np

  extend, _ = crc_backend()
  with fileio.open_binary(shard_file) as f:
    reader = _ReadAhead(
      f,
      [(e.offset, e.size, None if v.dtype == "string" else v.dtype) for e, v in planned],
      scan.chunk_bytes,
      shard_file,
    )
    try:
      for e, v in planned:
        string = v.dtype == "string"
        parts: list[bytes] = []  # a string tensor's bytes, checked whole
        stats = None if string else _Stats(v.dtype)
        digester = _Digester(v.dtype) if scan.digests and v.dtype in DIGEST_WIDTH else None
        crc, missing = 0, None
        while missing is None:
          chunk, missing = reader.next()
          if not chunk:
            continue
          scan.done += len(chunk)
          if string:
            parts.append(chunk)
            continue
          crc = extend(crc, chunk)
          stats.add(np, chunk)
          if digester is not None:
            digester.add(np, chunk)
          if scan.progress is not None:
            scan.progress(scan.done, scan.total)
        scan.results[e.key] = _judge(e, v, crc, missing, parts, stats)
        if digester is not None and scan.results[e.key].status == OK:
          scan.digested[e.key] = digester.digest()
    finally:
      reader.close()


def _judge(e, v, crc: int, missing: int | None, parts: list[bytes], stats) -> TensorHealth:
  """One tensor's result from what its bytes gave."""
  if missing:  # the bytes the shard lacks
    return _health(v, None, TRUNCATED, f"the shard ends {missing:,} bytes early")
  if v.dtype == "string":
    elements = 1
    for d in v.shape:
      elements *= d
    ok = _string_crc(b"".join(parts), elements) == e.crc32c
    return _health(v, None, OK if ok else CRC_MISMATCH, "" if ok else "stored CRC32C differs")
  if proto_wire.mask_crc(crc) != e.crc32c:
    return _health(
      v,
      None,
      CRC_MISMATCH,
      f"stored CRC32C {e.crc32c:#010x}, bytes give {proto_wire.mask_crc(crc):#010x}",
    )
  return _health(v, stats, OK, "")
