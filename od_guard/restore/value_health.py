"""Findings from a checkpoint's values: integrity and health, as the restore
will see them.

`checkpoint.verify` streams the tensors and records what each holds; this
module decides what that means for a fine-tune. A value the restore assigns
that is damaged, or holds NaN / Inf, is an error before step one; the same in
a value nothing restores (an optimizer slot under "detection", the box head
under a classification restore) is a warning.

    report = verify.verify(prefix, keys=restored_keys | {inventory.OBJECT_GRAPH_KEY})
    found = value_health.diagnose(report, restored=restored_keys)
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

from od_guard.checkpoint import inventory
from od_guard.checkpoint import key_folding
from od_guard.checkpoint import kinds
from od_guard.checkpoint import verify as verify_lib
from od_guard.restore import findings

Finding = findings.Finding

CORRUPT = "checkpoint_value_corrupt"
CORRUPT_UNRESTORED = "checkpoint_value_corrupt_unrestored"
NAN_INF_RESTORED = "nan_inf_in_restored_values"
NAN_INF_UNRESTORED = "nan_inf_in_unrestored_values"
NONPOSITIVE_VARIANCE = "nonpositive_moving_variance"
CONSTANT_KERNELS = "constant_restored_kernels"
VALUES_VERIFIED = "checkpoint_values_verified"
CODES = (
  CORRUPT,
  CORRUPT_UNRESTORED,
  NAN_INF_RESTORED,
  NAN_INF_UNRESTORED,
  NONPOSITIVE_VARIANCE,
  CONSTANT_KERNELS,
  VALUES_VERIFIED,
)
# Leaves that are legitimately all-zero or constant at initialisation.
_FIX_CORRUPT = (
  "Re-download or re-copy the checkpoint (compare its size and checksum with the source); "
  "if it was saved by your own run, fine-tune from an earlier checkpoint of that run."
)
_CONSTANT_OK = ("bias", "beta", "gamma", "moving_mean", "moving_variance", "moving_var")
_STOCK_CORRUPT = (
  "tf.errors.DataLossError in the middle of the restore (after the model and the input "
  "pipeline are built), or a restore that silently assigns damaged bytes"
)
_STOCK_NAN = "trains from NaN / Inf weights: the loss is NaN from step one"


def _leaf(t: verify_lib.TensorHealth) -> str:
  return (t.path or t.key).rstrip("/").rsplit("/", 1)[-1]


def _lines(tensors: Iterable[verify_lib.TensorHealth], what, limit: int = 8) -> str:
  tensors = list(tensors)
  shown = [f"  {t.path or t.key}: {what(t)}" for t in tensors[:limit]]
  if len(tensors) > limit:
    rest = key_folding.fold_keys([t.path or t.key for t in tensors[limit:]], limit=4)
    shown += [f"  ... {len(tensors) - limit} more: " + ", ".join(rest)]
  return "\n".join(shown)


def _nan_inf(t: verify_lib.TensorHealth) -> str:
  return f"{t.nan} NaN, {t.inf} Inf of {_elements(t):,} ({t.kind}, {t.component})"


def _elements(t: verify_lib.TensorHealth) -> int:
  n = 1
  for d in t.shape:
    n *= d
  return n


def _data(tensors: Iterable[verify_lib.TensorHealth]) -> dict:
  return {"tensors": [t.to_dict() for t in tensors]}


def is_restored(t: verify_lib.TensorHealth, restored: Collection[str] | None) -> bool:
  """Whether the restore reads `t`: the object graph always; with `restored`
  None (no model to say), every model value."""
  if t.key == inventory.OBJECT_GRAPH_KEY:
    return True
  if restored is None:
    return t.kind == kinds.MODEL
  return t.key in restored


def diagnose(
  report: verify_lib.VerifyResult,
  *,
  restored: Collection[str] | None = None,
  scope: str = "",
) -> list[Finding]:
  """Findings from a verification.

  Args:
    report: what `checkpoint.verify.verify` read.
    restored: the checkpoint keys the restore assigns (None: every model
      value counts as restored, as when no model was built).
    scope: words for what was verified, for the INFO finding (e.g. "the 260
      values the restore assigns").

  Returns:
    Errors for damaged or NaN / Inf values the restore assigns, warnings for
    the same elsewhere and for batch-norm variances <= 0, facts otherwise.
  """
  return [
    *_damaged(report, restored),
    *_nan_or_inf(report, restored),
    *_variances(report, restored),
    *_constant(report, restored),
    _verified(report, scope),
  ]


def _split(tensors, restored) -> tuple[list, list]:
  """`tensors` the restore assigns, and the others."""
  hit = [t for t in tensors if is_restored(t, restored)]
  return hit, [t for t in tensors if not is_restored(t, restored)]


def _damaged(report: verify_lib.VerifyResult, restored) -> list[Finding]:
  hit, miss = _split(report.damaged(), restored)
  found = []
  if hit:
    found.append(
      Finding(
        CORRUPT,
        findings.ERROR,
        f"{len(hit)} value(s) the restore assigns are damaged in the checkpoint's data "
        "shard: their bytes are not what was saved.",
        detail=_lines(hit, lambda t: f"{t.status}: {t.detail}"),
        fix=_FIX_CORRUPT,
        stock_outcome=_STOCK_CORRUPT,
        data=_data(hit),
      )
    )
  if miss:
    found.append(
      Finding(
        CORRUPT_UNRESTORED,
        findings.WARNING,
        f"{len(miss)} saved value(s) that this restore does not assign are damaged.",
        detail=_lines(miss, lambda t: f"{t.status}: {t.detail}"),
        fix=_FIX_CORRUPT + " The fine-tune does not read them, but the file is not intact.",
        data=_data(miss),
      )
    )
  return found


def _nan_or_inf(report: verify_lib.VerifyResult, restored) -> list[Finding]:
  hit, miss = _split([t for t in report.tensors if t.nan or t.inf], restored)
  found = []
  if hit:
    found.append(
      Finding(
        NAN_INF_RESTORED,
        findings.ERROR,
        f"{len(hit)} value(s) the restore assigns hold NaN or Inf: the checkpoint was saved "
        "by a run that diverged.",
        detail=_lines(hit, _nan_inf),
        fix="Fine-tune from a checkpoint saved before the run diverged (or the original zoo "
        "checkpoint); `od-guard verify` on each candidate says which are clean.",
        stock_outcome=_STOCK_NAN,
        data=_data(hit),
      )
    )
  if miss:
    found.append(
      Finding(
        NAN_INF_UNRESTORED,
        findings.WARNING,
        f"{len(miss)} saved value(s) that this restore does not assign hold NaN or Inf "
        "(e.g. optimizer slots of a run that diverged).",
        detail=_lines(miss, _nan_inf),
        fix="Nothing blocks this fine-tune; the run that saved the checkpoint diverged, so "
        "check that its model values are the ones you want.",
        data=_data(miss),
      )
    )
  return found


def _variances(report: verify_lib.VerifyResult, restored) -> list[Finding]:
  variances = [t for t in report.tensors if t.nonpositive_variance and is_restored(t, restored)]
  if not variances:
    return []
  return [
    Finding(
      NONPOSITIVE_VARIANCE,
      findings.WARNING,
      f"{len(variances)} batch-norm moving variance(s) the restore assigns have elements "
      "<= 0: normalisation divides by sqrt(variance + epsilon).",
      detail=_lines(variances, lambda t: f"max |x| {t.max_abs}, {t.component}"),
      fix="Use a checkpoint whose batch norms were trained (a variance of 0 is left by a "
      "layer that never saw data), or freeze those layers' statistics only after "
      "re-estimating them (train with batch norm updates on).",
      data=_data(variances),
    )
  ]


def _constant(report: verify_lib.VerifyResult, restored) -> list[Finding]:
  flat = [
    t
    for t in report.tensors
    if (t.all_zero or t.constant)
    and t.kind == kinds.MODEL
    and is_restored(t, restored)
    and _leaf(t) not in _CONSTANT_OK
  ]
  if not flat:
    return []
  return [
    Finding(
      CONSTANT_KERNELS,
      findings.INFO,
      f"{len(flat)} restored weight tensor(s) are all zero or constant (untrained?).",
      detail=_lines(flat, lambda t: "all zero" if t.all_zero else "constant"),
      data=_data(flat),
    )
  ]


def _verified(report: verify_lib.VerifyResult, scope: str) -> Finding:
  checked = [t for t in report.tensors if t.status == verify_lib.OK]
  return Finding(
    VALUES_VERIFIED,
    findings.INFO,
    f"{len(checked)} of {len(report.tensors)} value(s) read and checked "
    f"({report.bytes_read / 1e6:,.1f} MB in {report.seconds:.2f} s)"
    + (f": {scope}." if scope else "."),
    data={"summary": report.summary(), "bytes_read": report.bytes_read},
  )


def unreadable(what: str, received: str) -> Finding:
  """The finding for a checkpoint whose metadata reading already hit damaged
  bytes (a truncated shard that cuts the object graph)."""
  return Finding(
    CORRUPT,
    findings.ERROR,
    "The checkpoint is damaged: " + what,
    detail=received + "\n`od-guard verify` lists every damaged tensor.",
    fix="Re-download or re-copy the checkpoint (compare its size and checksum with the "
    "source); if it was saved by your own run, fine-tune from an earlier checkpoint of it.",
    stock_outcome=_STOCK_CORRUPT,
  )
