"""The preflight report: what was checked, what was found, and the verdict.

One frozen record (`PreflightReport`) and its renderings: JSON (schema
``od_guard.preflight/1``), terminal text (verdict and top problems first,
details after), and Markdown (for TensorBoard's text dashboard).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from od_guard.checkpoint import inventory
from od_guard.odapi import config as pipeline_config
from od_guard.restore import findings
from od_guard.restore import fingerprint as fingerprint_lib
from od_guard.restore import policy as policy_lib

if TYPE_CHECKING:  # annotations only: matching is the model tier's
  from od_guard.restore import matching as restore_match

SCHEMA = "od_guard.preflight/1"
STATIC = "static"
MODEL = "model"


@dataclasses.dataclass(frozen=True)
class PreflightReport:
  """Everything a preflight established.

  Attributes:
    tier: STATIC (config + index) or MODEL (the model was built and matched).
    config: the config's fine-tune fields (None when no config was given).
    checkpoint: the checkpoint as read (None when there is none to read).
    fingerprint: what the checkpoint is (None without a checkpoint).
    restore: the predicted restore (MODEL tier only).
    findings: every finding, errors first, severities as the policy sees them.
    verdict: pass / warn / fail and why.
    timings: seconds per phase ('read', 'static', 'import', 'build', 'match').
    strategy: the distribution strategy the model was built under.
    not_checked: what this run could not establish, in words.
  """

  tier: str
  config: pipeline_config.FineTuneConfig | None
  checkpoint: inventory.Inventory | None
  fingerprint: fingerprint_lib.Fingerprint | None
  restore: restore_match.RestoreReport | None
  findings: tuple[findings.Finding, ...]
  verdict: policy_lib.Verdict
  timings: dict[str, float] = dataclasses.field(default_factory=dict)
  strategy: str = ""
  not_checked: tuple[str, ...] = ()

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
      "config": self.config.to_dict() if self.config else None,
      "checkpoint": ckpt,
      "fingerprint": self.fingerprint.to_dict() if self.fingerprint else None,
      "restore": self.restore.to_dict() if self.restore else None,
      "findings": [f.to_dict() for f in self.findings],
      "not_checked": list(self.not_checked),
      "strategy": self.strategy,
      "timings": {k: round(v, 4) for k, v in self.timings.items()},
    }


_MARK = {findings.ERROR: "x", findings.WARNING: "!", findings.INFO: "i"}


def _coverage_lines(restore: restore_match.RestoreReport) -> list[str]:
  lines = [f"  {'component':<11} {'restored':>10} {'of':>12} {'tensors':>9}"]
  for c in list(restore.coverage) + [restore.total]:
    lines.append(
      f"  {c.component:<11} {c.fraction:>9.1%} {c.total_params:>12,} "
      f"{c.restored_tensors:>4}/{c.total_tensors:<4}"
    )
  return lines


def render_text(report: PreflightReport, *, verbose: bool = False) -> str:
  """The terminal report: verdict and top problems first, details after."""
  v = report.verdict
  errors_ = [f for f in report.findings if f.severity == findings.ERROR]
  warnings_ = [f for f in report.findings if f.severity == findings.WARNING]
  head = f"od_guard preflight: {v.decision.upper()}"
  counts = []
  if errors_:
    counts.append(f"{len(errors_)} error{'s' if len(errors_) > 1 else ''}")
  if warnings_:
    counts.append(f"{len(warnings_)} warning{'s' if len(warnings_) > 1 else ''}")
  if counts:
    head += " (" + ", ".join(counts) + ")"
  head += f"  [policy {v.policy.name}, {report.tier} tier]"
  out = [head]
  if report.restore is not None:
    t = report.restore.total
    out.append(
      f"restore: {len(report.restore.restored)} variables restore "
      f"({t.fraction:.1%} of the model's parameters), {len(report.restore.missing)} "
      f"missing, {len(report.restore.not_requested)} not requested, "
      f"{len(report.restore.shape_mismatches)} shape mismatches"
    )
  out.append("")
  shown = [
    f
    for f in report.findings
    if f.severity != findings.INFO or verbose or f.code == "num_classes_differ"
  ]
  for f in shown:
    out.append(f"[{_MARK[f.severity]}] {f.title}  ({f.code})")
    if f.detail:
      out.extend("    " + line for line in f.detail.splitlines())
    if f.fix:
      out.append(f"    fix: {f.fix}")
    if f.stock_outcome:
      stock = "stock model_main_tf2" if report.config else "plain TF / Keras"
      out.append(f"    {stock}: {f.stock_outcome}")
  if report.not_checked:
    out.append("")
    out.append("not checked:")
    out.extend(f"  - {n}" for n in report.not_checked)
  out.append("")
  out.append("details")
  if report.config:
    c = report.config
    out.append(f"  config:      {c.path}")
    out.append(
      f"               {c.meta_architecture}, feature_extractor {c.feature_extractor_type}, "
      f"num_classes {c.num_classes}, fine_tune_checkpoint_type "
      f'"{c.effective_checkpoint_type}"'
    )
  if report.checkpoint:
    out.append(
      f"  checkpoint:  {report.checkpoint.prefix} ({report.checkpoint.format}, "
      f"data shards {report.checkpoint.data_shards})"
    )
  if report.fingerprint:
    fp = report.fingerprint
    classes = fp.num_classes(report.config.add_background_class if report.config else None)
    out.append(
      f"  fingerprint: {fp.describe()}"
      + (f", {classes} classes" if classes is not None else "")
      + (
        f"; fits feature_extractor.type {', '.join(fp.feature_extractor_types)}"
        if fp.feature_extractor_types
        else ""
      )
    )
  if report.strategy:
    out.append(f"  strategy:    {report.strategy}")
  if report.restore is not None:
    out.append("  coverage (parameter-weighted, whole model):")
    out.extend("  " + line for line in _coverage_lines(report.restore))
  if report.timings:
    out.append("  timings:     " + ", ".join(f"{k} {v:.2f}s" for k, v in report.timings.items()))
  if not verbose and any(f.severity == findings.INFO for f in report.findings):
    out.append("  (facts not shown: --verbose lists them)")
  return "\n".join(out)


def render_markdown(report: PreflightReport) -> str:
  """A Markdown version for TensorBoard's text dashboard."""
  v = report.verdict
  out = [
    f"## od_guard preflight: **{v.decision.upper()}** (policy `{v.policy.name}`, "
    f"{report.tier} tier)",
    "",
  ]
  if report.fingerprint:
    out.append(
      f"Checkpoint: `{report.checkpoint.prefix if report.checkpoint else ''}` "
      f"({report.fingerprint.describe()})"
    )
    out.append("")
  if report.findings:
    out.append("| severity | finding | fix |")
    out.append("|---|---|---|")
    for f in report.findings:
      out.append(f"| {f.severity} | {f.title.replace('|', '/')} | {f.fix.replace('|', '/')} |")
    out.append("")
  if report.restore is not None:
    out.append("| component | restored params | total params | fraction |")
    out.append("|---|---:|---:|---:|")
    for c in list(report.restore.coverage) + [report.restore.total]:
      out.append(
        f"| {c.component} | {c.restored_params:,} | {c.total_params:,} | {c.fraction:.1%} |"
      )
  return "\n".join(out)


def scalars(report: PreflightReport) -> dict[str, float]:
  """The numbers logged under od_guard/ in TensorBoard."""
  out = {
    "od_guard/verdict": {policy_lib.PASS: 0.0, policy_lib.WARN: 1.0, policy_lib.FAIL: 2.0}[
      report.verdict.decision
    ],
    "od_guard/count/errors": float(sum(f.severity == findings.ERROR for f in report.findings)),
    "od_guard/count/warnings": float(sum(f.severity == findings.WARNING for f in report.findings)),
  }
  if report.restore is not None:
    r = report.restore
    out.update(
      {
        "od_guard/count/restored": float(len(r.restored)),
        "od_guard/count/missing": float(len(r.missing)),
        "od_guard/count/not_requested": float(len(r.not_requested)),
        "od_guard/count/unused": float(len(r.unused)),
        "od_guard/count/shape_mismatches": float(len(r.shape_mismatches)),
        "od_guard/coverage/total": r.total.fraction,
      }
    )
    for c in r.coverage:
      out[f"od_guard/coverage/{c.component}"] = c.fraction
  return out
