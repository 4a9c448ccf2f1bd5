"""`od-guard check` and `od-guard fix`: the preflight of a pipeline.config from the
command line, and the fixes it proposes applied to the config."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys

from od_guard.cli._common import EXIT_FINDINGS
from od_guard.cli._common import EXIT_OK
from od_guard.cli._common import print_json as _print_json
from od_guard.cli._common import project as _project
from od_guard.cli._common import tensorboard_dir as _tensorboard_dir
from od_guard.cli._common import write_tensorboard as _write_tensorboard


def _codes(values: list[str] | None, flag: str) -> frozenset[str] | None:
  """--ignore / --select: repeatable, comma-separated codes (None: not given)."""
  from od_guard.restore import policy as policy_lib

  return None if values is None else policy_lib.parse_codes(values, source=flag)


def _ignored_line(report) -> str | None:
  """One line naming what the policy's ignore / select lists kept out."""
  kept_out = [f for f in report.findings if f.data.get("ignored_by")]
  if not kept_out:
    return None
  names = ", ".join(
    sorted(
      {
        f"{f.code} (by {'--ignore' if f.data['ignored_by'] == 'ignore' else '--select'})"
        for f in kept_out
      }
    )
  )
  return (
    f"ignored: {len(kept_out)} finding(s) kept out of the verdict: {names}; --verbose lists them"
  )


def _with_edits(payload: dict, report, config_path: str) -> None:
  """Each finding of the JSON report gets the edits `od-guard fix` would make
  for it (field, old, new), or why it has none."""
  from od_guard.odapi import config as pipeline_config
  from od_guard.odapi import config_fix

  message, text = pipeline_config.parse_with_text(config_path)
  config = pipeline_config.read(config_path, message, text=text)
  for entry, extra in zip(
    payload["findings"], config_fix.annotate(list(report.findings), config), strict=True
  ):
    entry.update(extra)


def _cmd_check(args: argparse.Namespace) -> int:
  from od_guard.checkpoint import inventory
  from od_guard.odapi import preflight
  from od_guard.report import render

  _tensorboard_dir(args.tensorboard_dir)
  ignore = _codes(args.ignore, "--ignore") or frozenset()
  select = _codes(args.select, "--select")
  project = _project(args, args.pipeline_config_path)
  policy = project.to_policy(
    preset=args.policy,
    min_backbone_coverage=args.min_backbone_coverage,
    ignore=ignore,
    select=select,
  )
  where = args.where or project.where or "training"
  run = preflight.check_static if args.static else preflight.check
  if args.export:  # exporter_main_v2's --trained_checkpoint_dir, not the fine-tune
    export_dir = args.export

    def run(config_path, *, policy, **_):
      return preflight.check_eval(
        config_path, export_dir, policy=policy, mode=preflight.EXPORT, model_tier=not args.static
      )

  # TensorFlow's C++ start-up chatter is what od_guard exists to spare people.
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
  if not args.static and not args.json:
    print(
      "od-guard: building the model with the OD API (importing TensorFlow takes a few "
      "seconds; --static skips this) ...",
      file=sys.stderr,
      flush=True,
    )
  extra = {"values": True} if args.static and args.values else {}
  if where == "repo":
    from od_guard.odapi import repo_mode

    extra["static"] = repo_mode.read(
      args.pipeline_config_path,
      checkpoint=args.checkpoint,
      model_dir=args.model_dir,
      object_graph=inventory.OBJECT_GRAPH_SUMMARY if args.static else inventory.OBJECT_GRAPH_FULL,
    )
  report = run(
    args.pipeline_config_path,
    checkpoint=args.checkpoint,
    model_dir=args.model_dir,
    policy=policy,
    **extra,
  )
  if args.tensorboard_dir:
    from od_guard.report import tensorboard

    _write_tensorboard(lambda d: tensorboard.write(report, d), args.tensorboard_dir)
  if args.json:
    payload = report.to_dict()
    _with_edits(payload, report, args.pipeline_config_path)
    if project.path:
      payload["project_file"] = project.path
    if where != "training":
      payload["where"] = where
    _print_json(payload)
  else:
    print(render.render_text(report, verbose=args.verbose))
    ignored = _ignored_line(report)
    if ignored:
      print(ignored)
    if project.path:
      print(f"settings: [tool.od_guard] of {project.path}")
  return EXIT_FINDINGS if report.verdict.failed else EXIT_OK


_FIX_ROUNDS = 4


def _cmd_fix(args: argparse.Namespace) -> int:
  from od_guard.checkpoint import inventory
  from od_guard.odapi import config_fix
  from od_guard.odapi import preflight
  from od_guard.report import render

  ignore = _codes(args.ignore, "--ignore") or frozenset()
  select = _codes(args.select, "--select")
  path = args.pipeline_config_path
  project = _project(args, path)
  policy = project.to_policy(preset=args.policy, ignore=ignore, select=select)
  where = args.where or project.where or "training"

  def check():
    if where == "repo":
      from od_guard.odapi import repo_mode

      static = repo_mode.read(path, checkpoint=args.checkpoint, model_dir=args.model_dir)
    else:
      static = preflight.read(
        path,
        checkpoint=args.checkpoint,
        model_dir=args.model_dir,
        object_graph=inventory.OBJECT_GRAPH_SUMMARY,
      )
    return static, preflight.check_static(path, policy=policy, static=static)

  static, report = check()
  plan = config_fix.plan(path, list(report.findings), static.context.config)
  changed = plan.after != plan.before
  backup = after = None
  if args.write and changed:
    backup = config_fix.write(plan)
    applied = list(plan.applied)
    # As ruff --fix: some fixes show only once others are in (the checkpoint is
    # read once its path is right), so check again and fix again, a few rounds.
    for _ in range(_FIX_ROUNDS):
      static, after = check()
      more = config_fix.plan(path, list(after.findings), static.context.config)
      if more.after == more.before:
        break
      config_fix.write(more, backup=False)
      applied += more.applied
      after = None
    if after is None:
      after = check()[1]
    plan = dataclasses.replace(plan, applied=tuple(applied), after=more.after)
  if args.json:
    payload = plan.to_dict()
    payload["written"] = bool(backup)
    if after is not None:
      payload["verdict"] = after.verdict.to_dict()
    _print_json(payload)
  else:
    if changed and not backup:
      sys.stdout.write(plan.diff())
    for what, why in plan.skipped:
      print(f"not fixed: {what}: {why}")
    if not changed:
      print(f"od-guard fix: nothing to fix in {path} (verdict {report.verdict.decision})")
    elif backup:
      print(
        f"od-guard fix: wrote {path} ({len(plan.applied)} edit(s); the original is {backup}); "
        "checked again:"
      )
      print(render.render_text(after))
    else:
      print(f"od-guard fix: {len(plan.applied)} edit(s); --write applies them")
  if after is not None:
    return EXIT_FINDINGS if after.verdict.failed else EXIT_OK
  return EXIT_FINDINGS if changed else EXIT_OK
