"""The commands that read checkpoints and environments: inspect, diff, verify, doctor,
lint and remap (each `_cmd_NAME(args) -> exit code`)."""

from __future__ import annotations

import argparse
import sys

from od_guard import errors
from od_guard.cli._common import EXIT_FINDINGS
from od_guard.cli._common import EXIT_OK
from od_guard.cli._common import print_json as _print_json
from od_guard.cli._common import project as _project
from od_guard.cli._common import tensorboard_dir as _tensorboard_dir
from od_guard.cli._common import write_tensorboard as _write_tensorboard


def _cmd_inspect(args: argparse.Namespace) -> int:
  from od_guard.checkpoint import inventory
  from od_guard.report import inventory_text

  inv = inventory.read_inventory(args.path)
  if args.json:
    _print_json(inv.to_dict(depth=args.depth, with_variables=args.variables))
  else:
    print(inventory_text.render_inventory(inv, depth=args.depth))
  return EXIT_OK


def _cmd_diff(args: argparse.Namespace) -> int:
  from od_guard.checkpoint import diff as checkpoint_diff
  from od_guard.checkpoint import inventory
  from od_guard.report import inventory_text

  d = checkpoint_diff.diff(inventory.read_inventory(args.a), inventory.read_inventory(args.b))
  if args.json:
    _print_json(d.to_dict())
  else:
    print(inventory_text.render_diff(d))
  return EXIT_OK if d.identical else EXIT_FINDINGS


class _Progress:
  """Progress of a long verification on stderr, at most every 2 seconds."""

  MIN_BYTES = 256 << 20

  def __init__(self):
    import time

    self._clock = time.monotonic
    self._last = self._clock()

  def __call__(self, done: int, total: int) -> None:
    now = self._clock()
    if total < self.MIN_BYTES or (now - self._last < 2.0 and done < total):
      return
    self._last = now
    end = "\r" if sys.stderr.isatty() and done < total else "\n"
    print(f"od-guard verify: {done / 1e6:,.0f} of {total / 1e6:,.0f} MB", end=end, file=sys.stderr)


def _cmd_verify(args: argparse.Namespace) -> int:
  from od_guard.checkpoint import verify
  from od_guard.report import verify_text
  from od_guard.restore import findings as findings_lib
  from od_guard.restore import value_health

  _tensorboard_dir(args.tensorboard_dir)
  report = verify.verify(args.path, progress=_Progress())
  found = value_health.diagnose(report)
  if args.tensorboard_dir:
    from od_guard.report import tensorboard

    _write_tensorboard(lambda d: tensorboard.write_verification(report, d), args.tensorboard_dir)
  if args.json:
    _print_json(verify_text.to_dict(report, found, with_tensors=args.tensors))
  else:
    print(verify_text.render_text(report, found))
  problems = any(f.severity != findings_lib.INFO for f in found)
  return EXIT_FINDINGS if problems else EXIT_OK


def _cmd_doctor(args: argparse.Namespace) -> int:
  from od_guard.odapi import doctor as environment_doctor

  report = environment_doctor.run(
    deep=args.deep, pipeline_config_path=args.pipeline_config_path, model_dir=args.model_dir
  )
  if args.json:
    _print_json(report.to_dict())
  else:
    print(environment_doctor.render_text(report))
  return EXIT_OK if report.ok else EXIT_FINDINGS


def _cmd_lint(args: argparse.Namespace) -> int:
  from od_guard.checkpoint import inventory
  from od_guard.naming import lint as naming_lint
  from od_guard.naming import rules as naming_rules

  rules_path, flag = args.rules, "--rules"
  if not rules_path and not args.preset:
    project = _project(args, args.paths[0])
    rules_path = project.naming_rules
    flag = f"naming_rules in [tool.od_guard] of {project.path}"
  presets = args.preset or ([] if rules_path else ["odapi"])
  rules = naming_rules.load(rules_path, presets, flag=flag)
  results = []
  seen = set()
  for path in args.paths:
    inv = inventory.read_inventory(path, object_graph=inventory.OBJECT_GRAPH_NONE)
    if inv.prefix in seen:  # pre-commit passes .index and .data-* of one checkpoint
      continue
    seen.add(inv.prefix)
    results.append(naming_lint.lint(rules, inv))
  if args.json:
    _print_json(naming_lint.to_dict(results))
  else:
    for result in results:
      print("\n".join(result.lines()))
  return EXIT_OK if all(r.passed for r in results) else EXIT_FINDINGS


def _cmd_remap(args: argparse.Namespace) -> int:
  from od_guard.naming import remap

  rules = [remap.Rule.parse(r) for r in args.rule or []]
  if args.from_report:
    rules += remap.rules_from_report(args.from_report)
  if not rules:
    raise errors.UsageError(
      "remap needs --rule or --from-report.",
      received="no --rule, no --from-report",
      fix="e.g. --rule 'model/CustomExtractor/->model/_feature_extractor/'",
    )
  result = remap.remap(
    args.src,
    args.dst,
    rules,
    overwrite=args.overwrite,
    progress=None if args.json else remap.print_progress,
  )
  for note in result.repaired:  # what an interrupted earlier remap left there
    print(f"od-guard remap: {note}", file=sys.stderr)
  if args.json:
    _print_json(result.to_dict())
  else:
    print(
      f"od-guard remap: wrote {result.destination} ({result.renamed} keys renamed, "
      f"{result.unchanged} unchanged{', object graph rewritten' if result.object_graph_rewritten else ''}"
      f"); verified by re-reading it. {result.source} is untouched."
    )
  return EXIT_OK
