"""Writing reports as summaries the od_guard dashboard owns.

`record_pb` builds the summary as a protocol buffer with TensorBoard's own
protos (no TensorFlow: `od-guard check --static` and `lint` write with it);
`record` writes it with `tf.summary` under the default writer, as TensorBoard's
own summary functions do. Both store the blob sequence ``[header, record]``
described in `metadata`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
import json
from typing import Any

from tensorboard.compat.proto import summary_pb2
from tensorboard.compat.proto import tensor_pb2
from tensorboard.compat.proto import tensor_shape_pb2
from tensorboard.compat.proto import types_pb2

from od_guard.report.dashboard import metadata

NAMING_SCHEMA = "od_guard.naming_save/1"
_DECISIONS = ("pass", "warn", "fail")


def _count(findings: Sequence[Mapping], severity: str) -> int:
  return sum(1 for f in findings if isinstance(f, Mapping) and f.get("severity") == severity)


def _preflight_header(report: Mapping[str, Any]) -> dict:
  verdict = report.get("verdict") or {}
  config = report.get("config") or {}
  checkpoint = report.get("checkpoint") or {}
  restore = report.get("restore") or {}
  findings = report.get("findings") or []
  total = next(
    (c for c in restore.get("coverage") or () if c.get("component") == "total"),
    None,
  )
  return {
    "decision": verdict.get("decision"),
    "reasons": list(verdict.get("reasons") or ())[:3],
    "tier": report.get("tier"),
    "checkpoint": checkpoint.get("given") or config.get("fine_tune_checkpoint") or "",
    "checkpoint_format": checkpoint.get("format") or "",
    "config": config.get("path") or "",
    "checkpoint_type": config.get("effective_checkpoint_type")
    or config.get("fine_tune_checkpoint_type")
    or "",
    "errors": _count(findings, "error"),
    "warnings": _count(findings, "warning"),
    "counts": restore.get("counts") or {},
    "coverage": total.get("fraction") if total else None,
  }


def _naming_header(record: Mapping[str, Any]) -> dict:
  violations = record.get("violations") or []
  by_rule: dict[str, int] = {}
  for v in violations:
    by_rule[str(v.get("rule", ""))] = by_rule.get(str(v.get("rule", "")), 0) + 1
  return {
    "decision": "warn" if violations else "pass",
    "checkpoint": record.get("checkpoint") or "",
    "violations": len(violations),
    "by_rule": by_rule,
  }


def _verification_header(record: Mapping[str, Any]) -> dict:
  """A verification (`od_guard.verify/1`, or a record that states its own
  verdict, decision, healthy or passed)."""
  verdict = record.get("verdict")
  decision = verdict.get("decision") if isinstance(verdict, Mapping) else record.get("decision")
  for flag in ("healthy", "passed"):
    if decision not in _DECISIONS and isinstance(record.get(flag), bool):
      decision = "pass" if record[flag] else "fail"
  findings = record.get("findings") if isinstance(record.get("findings"), list) else []
  return {
    "decision": decision if decision in _DECISIONS else None,
    "checkpoint": str(record.get("prefix") or record.get("checkpoint") or ""),
    "errors": _count(findings, "error"),
    "warnings": _count(findings, "warning"),
    "damaged": len(record.get("damaged") or ()),
    "unhealthy": len(record.get("unhealthy") or ()),
  }


def header(kind: str, record: Mapping[str, Any]) -> dict:
  """The few fields the runs list shows, computed when the record is written."""
  if kind == metadata.PREFLIGHT:
    body = _preflight_header(record)
  elif kind == metadata.NAMING:
    body = _naming_header(record)
  else:
    body = _verification_header(record)
  return {"kind": kind, "schema": record.get("schema"), **body}


def naming_record(violations: Sequence, path: str) -> dict:
  """The record of the naming violations found in the checkpoint `path` at a save."""
  return {
    "schema": NAMING_SCHEMA,
    "checkpoint": path,
    "violations": [
      {
        "key": getattr(v, "key", ""),
        "path": v.path,
        "rule": v.rule,
        "message": v.message,
      }
      for v in violations
    ],
  }


def encode(kind: str, record: Mapping[str, Any]) -> list[bytes]:
  """The blob sequence ``[header, record]`` as JSON bytes."""

  def dump(value) -> bytes:
    return json.dumps(value, separators=(",", ":"), default=str).encode("utf-8")

  return [dump(header(kind, record)), dump(record)]


def record_pb(
  tag: str, record: Mapping[str, Any], *, kind: str, description: str = ""
) -> summary_pb2.Summary:
  """The summary of `record` under `tag`, built without TensorFlow.

  Args:
    tag: the summary's tag, e.g. metadata.TAGS[kind].
    record: the JSON-able record (e.g. `Report.to_dict()`).
    kind: one of metadata.KINDS.
    description: shown by TensorBoard beside the tag.

  Returns:
    A `Summary` with one value, ready for an event at the record's step.
  """
  meta = metadata.create_summary_metadata(kind, description)
  blobs = encode(kind, record)
  tensor = tensor_pb2.TensorProto(
    dtype=types_pb2.DT_STRING,
    tensor_shape=tensor_shape_pb2.TensorShapeProto(
      dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=len(blobs))]
    ),
    string_val=blobs,
  )
  return summary_pb2.Summary(
    value=[summary_pb2.Summary.Value(tag=tag, metadata=meta, tensor=tensor)]
  )


def record(
  name: str,
  data: Mapping[str, Any],
  *,
  kind: str,
  step: int | None = None,
  description: str = "",
) -> bool:
  """Writes `data` with tf.summary to the default summary writer.

  Args:
    name: the summary's name (prefixed by any active name scope).
    data: the JSON-able record.
    kind: one of metadata.KINDS.
    step: the step; defaults to `tf.summary.experimental.get_step()`.
    description: shown by TensorBoard beside the tag.

  Returns:
    True if written, False when no default writer is set (as tf.summary does).
  """
  import tensorflow as tf

  meta = metadata.create_summary_metadata(kind, description)
  with tf.summary.experimental.summary_scope(name, "od_guard_record") as (tag, _):
    return tf.summary.write(
      tag=tag,
      tensor=tf.constant(encode(kind, data), dtype=tf.string),
      step=step,
      metadata=meta.SerializeToString(),
    )
