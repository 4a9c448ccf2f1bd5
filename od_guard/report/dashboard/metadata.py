"""The dashboard's plugin name and the metadata of the summaries it owns.

Each summary is a blob sequence of two JSON documents, ``[header, record]``:
the header is a few hundred bytes (verdict, checkpoint, config, counts) so that
the runs list never reads a whole report; the record is the full JSON
(``od_guard.preflight/1`` for a restore report). The plugin content names the
record's kind.
"""

from __future__ import annotations

import json

from tensorboard.compat.proto import summary_pb2

PLUGIN_NAME = "od_guard"
CONTENT_VERSION = 1

PREFLIGHT = "preflight"
NAMING = "naming"
VERIFICATION = "verification"
KINDS = (PREFLIGHT, NAMING, VERIFICATION)

# Tags of the summaries od_guard writes itself (the writer takes any tag).
TAGS = {
  PREFLIGHT: "od_guard/dashboard/preflight",
  NAMING: "od_guard/dashboard/naming",
  VERIFICATION: "od_guard/dashboard/verification",
}

HEADER = 0  # index of the header in the blob sequence
RECORD = 1  # index of the record


class UnknownContentError(ValueError):
  """Plugin content this version of the dashboard cannot read."""


def create_summary_metadata(kind: str, description: str = "") -> summary_pb2.SummaryMetadata:
  """The metadata of one od_guard summary of `kind`.

  Raises:
    ValueError: `kind` is not one of KINDS.
  """
  if kind not in KINDS:
    raise ValueError(f"kind must be one of {', '.join(KINDS)}. Received: kind={kind!r}")
  content = json.dumps({"version": CONTENT_VERSION, "kind": kind}).encode("utf-8")
  return summary_pb2.SummaryMetadata(
    summary_description=description,
    plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name=PLUGIN_NAME, content=content),
    data_class=summary_pb2.DATA_CLASS_BLOB_SEQUENCE,
  )


def parse_plugin_content(content: bytes) -> str:
  """The kind named by a summary's plugin content.

  Raises:
    UnknownContentError: the content is not od_guard's, or from a newer version.
  """
  try:
    parsed = json.loads(content.decode("utf-8"))
  except (UnicodeDecodeError, json.JSONDecodeError) as e:
    raise UnknownContentError(f"od_guard plugin content is not JSON: {content[:40]!r}") from e
  if not isinstance(parsed, dict) or parsed.get("kind") not in KINDS:
    raise UnknownContentError(f"od_guard plugin content names no known kind: {parsed!r:.80}")
  if not isinstance(parsed.get("version"), int) or parsed["version"] > CONTENT_VERSION:
    raise UnknownContentError(
      f"od_guard plugin content version {parsed.get('version')!r} is newer than this "
      f"dashboard's ({CONTENT_VERSION}); upgrade od_guard where TensorBoard runs."
    )
  return parsed["kind"]
