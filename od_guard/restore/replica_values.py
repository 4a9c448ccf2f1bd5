"""After a real restore: does every replica hold, bit for bit, the values the
checkpoint holds for the variables the prediction said would be restored?

The check runs where the values live. On each replica's device every variable
is read as the integers of its bits (`tf.bitcast`) and reduced to a
`verify.Digest` (three wrapping int64 sums and the element count), so only 32
bytes per variable and replica leave the accelerator. The file side is the
same fingerprint, computed by `od_guard.checkpoint.verify` from the stream it
already reads and CRC-checks.

    result = replica_values.verify_restored(strategy, objects, bindings, prefix)
    if not result.ok:
      raise replica_values.RestoredValuesMismatchError(result)

TensorFlow is imported inside the functions that need it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
import dataclasses
import time
from typing import Any

from od_guard import errors
from od_guard.checkpoint import key_folding
from od_guard.checkpoint import verify as verify_lib
from od_guard.restore import findings as findings_lib

VERIFIED = "restore_verified"
NOT_APPLIED = "restore_not_applied"


@dataclasses.dataclass(frozen=True)
class Mismatch:
  """A restored variable whose value differs from the checkpoint's on some replicas.

  Attributes:
    path: the variable's object path (as the prediction names it).
    key: the checkpoint key it was restored from.
    replicas: indices of the replicas whose value differs.
    devices: those replicas' devices.
  """

  path: str
  key: str
  replicas: tuple[int, ...]
  devices: tuple[str, ...]

  def to_dict(self) -> dict:
    return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Verification:
  """The outcome of `verify_restored`.

  Attributes:
    checked: variables compared on every replica.
    replicas: the number of replicas (local results) compared.
    mismatches: the variables that differ, with the replicas where they do.
    not_checked: variables not compared, with why (e.g. a string tensor).
    seconds: wall time, file stream included.
  """

  checked: int
  replicas: int
  mismatches: tuple[Mismatch, ...] = ()
  not_checked: tuple[str, ...] = ()
  seconds: float = 0.0

  @property
  def ok(self) -> bool:
    return not self.mismatches

  def to_dict(self) -> dict:
    return {
      "checked": self.checked,
      "replicas": self.replicas,
      "ok": self.ok,
      "mismatches": [m.to_dict() for m in self.mismatches],
      "not_checked": list(self.not_checked),
      "seconds": round(self.seconds, 4),
    }


class RestoredValuesMismatchError(errors.OdGuardError):
  """After the real restore, some replica holds a value the checkpoint does not."""

  exit_code = 1

  def __init__(self, verification: Verification):
    self.verification = verification
    ms = verification.mismatches
    super().__init__(
      f"{len(ms)} of {verification.checked} restored variables differ from the checkpoint "
      f"on some of the {verification.replicas} replicas, after the restore and before "
      "step one; training was stopped.",
      received="\n"
      + "\n".join(
        f"  {m.path} (key {m.key}): replica(s) {', '.join(map(str, m.replicas))} "
        f"on {', '.join(m.devices)}"
        for m in ms[:20]
      )
      + (f"\n  ... and {len(ms) - 20} more" if len(ms) > 20 else ""),
      fix=(
        "Do not train on these weights. Check what assigns the variables after the "
        "restore (a custom restore hook, an initializer that runs late, a replica-local "
        "variable synchronisation setting) and rerun; if nothing does, report it with "
        "the model and the checkpoint."
      ),
    )


def _as_int64(tf, value):
  """The tensor's elements as the int64 of their bits (see verify.DIGEST_WIDTH)."""
  name = value.dtype.name
  if name in ("float16", "bfloat16"):
    return tf.cast(tf.bitcast(value, tf.int16), tf.int64)
  if name == "float32":
    return tf.cast(tf.bitcast(value, tf.int32), tf.int64)
  if name in ("float64", "uint64"):
    return tf.bitcast(value, tf.int64)
  return tf.cast(value, tf.int64)  # bool, int8..int64, uint8..uint32: exact


def device_digest(value) -> verify_lib.Digest:
  """The `verify.Digest` of a tensor (or variable), computed on its device.

  Args:
    value: a `tf.Tensor` or `tf.Variable` with a numeric or bool dtype.

  Returns:
    The digest; only its four numbers are copied off the device.

  Raises:
    KeyError: the dtype has no digest (strings, complex, resources).
  """
  import tensorflow as tf

  verify_lib.DIGEST_WIDTH[value.dtype.name]
  device = getattr(value, "device", "") or None
  with tf.device(device):
    x = tf.reshape(_as_int64(tf, tf.convert_to_tensor(value)), [-1])
    n = tf.size(x, out_type=tf.int64)
    i1 = tf.range(1, n + 1, dtype=tf.int64)
    v = x + i1 * tf.constant(verify_lib.DIGEST_K, tf.int64)
    v = tf.bitwise.bitwise_xor(v, tf.bitwise.right_shift(v, tf.constant(31, tf.int64)))
    v = v * tf.constant(verify_lib.DIGEST_M, tf.int64)
    sums = tf.stack([n, tf.reduce_sum(x), tf.reduce_sum(x * i1), tf.reduce_sum(v)])
  return verify_lib.Digest(*(int(s) for s in sums.numpy()))


def local_components(strategy, variable) -> list:
  """The variable's component on every replica (one for a plain variable)."""
  import tensorflow as tf

  target = variable
  if not isinstance(variable, tf.Variable):
    # A Keras 3 variable wraps the (possibly distributed) tf.Variable.
    target = getattr(variable, "value", variable)
  if strategy is None:
    return [target]
  return list(strategy.experimental_local_results(target))


def verify_restored(
  strategy,
  objects: Mapping[str, Any],
  bindings: Sequence[tuple[str, str]],
  prefix: str,
  *,
  file_digests: Mapping[str, verify_lib.Digest] | None = None,
) -> Verification:
  """Compares every restored variable with the checkpoint, on every replica.

  Args:
    strategy: the distribution strategy the variables live under (None: the
      variables are compared as they are).
    objects: object path -> live variable (as `live_graph.capture` names them).
    bindings: (path, checkpoint key) of every variable the restore assigned.
    prefix: the checkpoint prefix the values came from.
    file_digests: the checkpoint side, if already streamed
      (`verify.verify(prefix, digests=True).digests`); else streamed here.

  Returns:
    The verification; mismatches are reported, never raised.
  """
  start = time.perf_counter()
  if file_digests is None:
    file_digests = verify_lib.verify(prefix, keys={k for _, k in bindings}, digests=True).digests
  mismatches: list[Mismatch] = []
  not_checked: list[str] = []
  replicas = 1
  checked = 0
  for path, key in bindings:
    variable = objects.get(path)
    expected = file_digests.get(key)
    if variable is None:
      not_checked.append(f"{path}: not found in the live model")
      continue
    if expected is None:
      not_checked.append(f"{path}: {key} has no digest (not numeric, sliced or damaged)")
      continue
    components = local_components(strategy, variable)
    replicas = max(replicas, len(components))
    wrong = []
    for i, c in enumerate(components):
      if c.dtype.name not in verify_lib.DIGEST_WIDTH:
        break
      if device_digest(c) != expected:
        wrong.append((i, c.device))
    else:
      checked += 1
      if wrong:
        mismatches.append(
          Mismatch(path, key, tuple(i for i, _ in wrong), tuple(d for _, d in wrong))
        )
      continue
    not_checked.append(f"{path}: dtype {components[0].dtype.name} has no digest")
  return Verification(
    checked, replicas, tuple(mismatches), tuple(not_checked), time.perf_counter() - start
  )


def finding(result: Verification, *, what: str | None = None) -> findings_lib.Finding:
  """The finding that closes a verification: every value as promised, or which not.

  Args:
    result: the verification.
    what: what the values are called ('variables'); None: the drop-in's
      wording, "N restored values verified on R replicas".
  """
  plural = "s" if result.replicas != 1 else ""
  if result.mismatches:
    paths = [m.path for m in result.mismatches]
    return findings_lib.Finding(
      NOT_APPLIED,
      findings_lib.ERROR,
      f"{len(paths)} of {result.checked} {what or 'restored values'} differ from the "
      "checkpoint after the restore.",
      detail="\n".join(
        [f"  {m.path}: replica(s) {', '.join(map(str, m.replicas))}" for m in result.mismatches]
        if len(paths) <= 20
        else ["  " + l for l in key_folding.fold_keys(paths)]
      ),
      fix="Report this with the model and checkpoint: the restore did not do what it promised.",
      data=result.to_dict(),
    )
  return findings_lib.Finding(
    VERIFIED,
    findings_lib.INFO,
    f"Verified: {result.checked} {what} hold the checkpoint's values on "
    f"{result.replicas} replica{plural}."
    if what
    else f"{result.checked} restored values verified on {result.replicas} replica{plural} "
    "(bit-exact, fingerprinted on each replica's device).",
    detail="bit-exact, fingerprinted on each replica's device",
    data=result.to_dict(),
  )
