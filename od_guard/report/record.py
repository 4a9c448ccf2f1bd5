"""The report of a restore check: what was checked, what was found, the verdict.

One frozen record (`Report`) for every integration (the OD API preflight, the
Keras guard) and its JSON form (schema ``od_guard.preflight/1``, see
docs/json_schema.md). Renderings live beside it: `render` (terminal text,
Markdown) and `tensorboard` (event files).
"""

from __future__ import annotations

from collections.abc import Mapping
import dataclasses
from typing import TYPE_CHECKING, Any

from od_guard.checkpoint import inventory
from od_guard.restore import findings
from od_guard.restore import fingerprint as fingerprint_lib
from od_guard.restore import policy as policy_lib

if TYPE_CHECKING:  # annotations only: matching is the model tier's
  from od_guard.restore import matching as restore_match

SCHEMA = "od_guard.preflight/1"
STATIC = "static"
MODEL = "model"


@dataclasses.dataclass(frozen=True)
class Report:
  """Everything a preflight established.

  Attributes:
    tier: STATIC (config + index) or MODEL (the model was built and matched).
    config: the JSON form of what the checkpoint was checked against (the OD API
      config's fine-tune fields; None for a Keras model).
    checkpoint: the checkpoint as read (None when there is none to read).
    fingerprint: what the checkpoint is (None without a checkpoint).
    restore: the predicted restore (MODEL tier only).
    findings: every finding, errors first, severities as the policy sees them.
    verdict: pass / warn / fail and why.
    timings: seconds per phase ('read', 'static', 'import', 'build', 'match').
    strategy: the distribution strategy the model was built under.
    shims: the in-process shims the model was built with (the OD API's
      `od_guard.odapi.compat` on current TensorFlow); () when none.
    not_checked: what this run could not establish, in words.
    config_summary: `config` in one line, for the text report.
    stock_name: who `Finding.stock_outcome` describes (e.g. 'stock model_main_tf2').
  """

  tier: str
  config: Mapping[str, Any] | None
  checkpoint: inventory.Inventory | None
  fingerprint: fingerprint_lib.Fingerprint | None
  restore: restore_match.RestorePrediction | None
  findings: tuple[findings.Finding, ...]
  verdict: policy_lib.Verdict
  timings: dict[str, float] = dataclasses.field(default_factory=dict)
  strategy: str = ""
  shims: tuple[str, ...] = ()
  not_checked: tuple[str, ...] = ()
  config_summary: str = ""
  stock_name: str = "plain TF / Keras"

  def finding(self, code: str) -> findings.Finding | None:
    return next((f for f in self.findings if f.code == code), None)

  def codes(self) -> list[str]:
    return [f.code for f in self.findings]

  def to_dict(self) -> dict:
    ckpt = None
    if self.checkpoint is not None:
      ckpt = {
        "given": self.checkpoint.resolved.given,
        "resolved": self.checkpoint.prefix,
        "format": self.checkpoint.format,
        "data_shards": self.checkpoint.data_shards,
        "totals": self.checkpoint.totals().to_dict(),
        "components": {c: t.to_dict() for c, t in self.checkpoint.totals_by_component().items()},
      }
    return {
      "schema": SCHEMA,
      "tier": self.tier,
      "verdict": self.verdict.to_dict(),
      "config": dict(self.config) if self.config else None,
      "checkpoint": ckpt,
      "fingerprint": self.fingerprint.to_dict() if self.fingerprint else None,
      "restore": self.restore.to_dict() if self.restore else None,
      "findings": [f.to_dict() for f in self.findings],
      "not_checked": list(self.not_checked),
      "strategy": self.strategy,
      "timings": {k: round(v, 4) for k, v in self.timings.items()},
      **({"shims": list(self.shims)} if self.shims else {}),
    }
