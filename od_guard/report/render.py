"""Renderings of a `record.Report` for people: terminal text (verdict and top
problems first, details after) and Markdown (TensorBoard's text dashboard)."""

from __future__ import annotations

from od_guard.checkpoint import limits
from od_guard.report import record
from od_guard.restore import decide
from od_guard.restore import findings
from od_guard.restore import matching

_MARK = {findings.ERROR: "x", findings.WARNING: "!", findings.INFO: "i"}


def _coverage_lines(restore: matching.RestorePrediction) -> list[str]:
  lines = [f"  {'component':<11} {'restored':>10} {'of':>12} {'tensors':>9}"]
  for c in list(restore.coverage) + [restore.total]:
    lines.append(
      f"  {c.component:<11} {c.fraction:>9.1%} {c.total_params:>12,} "
      f"{c.restored_tensors:>4}/{c.total_tensors:<4}"
    )
  return lines


def render_text(report: record.Report, *, verbose: bool = False) -> str:
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
    if f.severity != findings.INFO or verbose or f.code in decide.SHOWN_WHEN_QUIET["preflight"]
  ]
  for f in shown:
    out.append(f"[{_MARK[f.severity]}] {f.title}  ({f.code})")
    if f.detail:
      out.extend("    " + line for line in f.detail.splitlines())
    if f.fix:
      out.append(f"    fix: {f.fix}")
    if f.stock_outcome:
      out.append(f"    {report.stock_name}: {f.stock_outcome}")
  if report.not_checked:
    out.append("")
    out.append("not checked:")
    out.extend(f"  - {n}" for n in report.not_checked)
  out.append("")
  out.append("details")
  if report.config:
    out.append(f"  config:      {report.config.get('path', '')}")
    if report.config_summary:
      out.append(f"               {report.config_summary}")
  if report.checkpoint:
    out.append(
      f"  checkpoint:  {report.checkpoint.prefix} ({report.checkpoint.format}, "
      f"data shards {report.checkpoint.data_shards})"
    )
  if report.fingerprint:
    fp = report.fingerprint
    classes = fp.num_classes(report.config.get("add_background_class") if report.config else None)
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
  if report.shims:
    out.append(f"  shims:       {', '.join(report.shims)} (od_guard.odapi.compat)")
  if report.restore is not None:
    out.append("  coverage (parameter-weighted, whole model):")
    out.extend("  " + line for line in _coverage_lines(report.restore))
  if report.timings:
    out.append("  timings:     " + ", ".join(f"{k} {v:.2f}s" for k, v in report.timings.items()))
  if not verbose and any(f.severity == findings.INFO for f in report.findings):
    out.append("  (facts not shown: --verbose lists them)")
  # Keys, paths and config strings come from files: no control character
  # reaches the terminal raw.
  return "\n".join(map(limits.printable, out))


def render_markdown(report: record.Report) -> str:
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
