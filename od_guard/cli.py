"""The `od-guard` command.

Exit codes (stable, for CI):
  0  ok: the command ran and found nothing to stop for (`check`: verdict pass
     or warn; `doctor`: no blocking problem);
  1  findings: `diff` found differences, `check` failed its policy, `doctor`
     found a blocking problem, `verify` found damaged or unhealthy values;
  2  bad input or usage: a typed od_guard error (missing path, corrupt file,
     malformed config ...).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
import dataclasses
import json
import os
import sys

from od_guard import _files
from od_guard import errors

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_BAD_INPUT = 2


class _ArgumentError(Exception):
  """argparse refused the command line; `main` turns it into a UsageError."""

  def __init__(self, prog: str, message: str):
    super().__init__(message)
    self.prog = prog
    self.message = message


class _Parser(argparse.ArgumentParser):
  """argparse, but usage errors become typed od_guard errors (exit 2)."""

  def error(self, message: str):
    raise _ArgumentError(self.prog, message)


class _VersionAction(argparse.Action):
  """--version: od_guard's version, then TF's, protobuf's and the OD API's, read
  from package metadata when asked for (importing TF would take seconds)."""

  def __init__(self, option_strings, dest=argparse.SUPPRESS, **kwargs):
    super().__init__(option_strings, dest=dest, default=argparse.SUPPRESS, nargs=0, **kwargs)

  def __call__(self, parser, namespace, values, option_string=None):
    from od_guard.odapi import versions

    sys.stdout.write(versions.describe() + "\n")  # stdout, as argparse's own "version" action
    parser.exit()


def _depth(value: str) -> int:
  from od_guard.checkpoint import limits

  n = 0
  if value.strip().isdigit() and len(value.strip()) <= 6:
    n = int(value)
  if not 1 <= n <= limits.MAX_INSPECT_DEPTH:
    raise argparse.ArgumentTypeError(
      f"--depth must be a whole number >= 1 and <= {limits.MAX_INSPECT_DEPTH}, got {value[:40]!r}"
    )
  return n


def _print_json(payload: dict) -> None:
  # One write: json.dump with indent streams thousands of small ones.
  sys.stdout.write(json.dumps(payload, indent=2) + "\n")


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


def _fraction(value: str) -> float:
  try:
    f = float(value)
  except ValueError:
    f = -1.0
  if not 0.0 <= f <= 1.0:
    raise argparse.ArgumentTypeError(f"must be a fraction between 0 and 1, got {value!r}")
  return f


def _tensorboard_dir(path: str | None) -> str | None:
  """--tensorboard_dir, refused before any work when it cannot be a directory."""
  if not path:
    return path
  from od_guard.checkpoint import fileio

  if fileio.is_remote(path):
    return path
  # The nearest part of the path that exists must be a directory.
  probe = os.path.abspath(path)
  while not os.path.lexists(probe) and os.path.dirname(probe) != probe:
    probe = os.path.dirname(probe)
  if os.path.isdir(probe):
    return path
  described = "a file" if os.path.isfile(probe) else "not a directory"
  raise errors.UsageError(
    f"--tensorboard_dir {path!r} cannot be a directory: {probe!r} is {described}.",
    received=f"--tensorboard_dir {path}",
    fix="Pass a directory (it is created if missing), e.g. --tensorboard_dir runs/od_guard.",
  )


def _write_tensorboard(write: Callable[[str], object], logdir: str) -> None:
  """Writes the event file; an OS error (permission, disk full) is a typed error."""
  try:
    write(logdir)
  except OSError as e:
    raise errors.UsageError(
      f"Cannot write the TensorBoard events to {logdir!r}: {e.strerror or e}.",
      received=f"--tensorboard_dir {logdir}",
      fix="Pass a directory the user running od_guard may write to.",
    ) from e


def _codes(values: list[str] | None, flag: str) -> frozenset[str] | None:
  """--ignore / --select: repeatable, comma-separated codes (None: not given)."""
  from od_guard.restore import policy as policy_lib

  return None if values is None else policy_lib.parse_codes(values, source=flag)


def _project(args: argparse.Namespace, start: str):
  """The project file's settings ([tool.od_guard]), unless --isolated."""
  from od_guard import project_config

  if getattr(args, "isolated", False):
    return project_config.ProjectConfig()
  return project_config.discover(start)


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
    violations, checked = naming_rules.check(rules, inv.variables)
    results.append((inv, violations, checked))
  if args.json:
    payload = [
      {
        "schema": naming_rules.SCHEMA,
        "checkpoint": inv.prefix,
        "rules": rules.to_dict(),
        "checked": checked,
        "exempt": len(inv.variables) - checked,
        "passed": not violations,
        "violations": [v.to_dict() for v in violations],
      }
      for inv, violations, checked in results
    ]
    _print_json(
      payload[0]
      if len(payload) == 1
      else {"schema": naming_rules.SCHEMA + "+list", "results": payload}
    )
  else:
    for inv, violations, checked in results:
      print(
        f"od-guard lint: {inv.prefix} under rules {rules.name}: {checked} names checked, "
        f"{len(inv.variables) - checked} exempt, {len(violations)} violation(s)"
      )
      for line in naming_rules.violation_lines(violations, limit=8):
        print(line)
  return EXIT_FINDINGS if any(v for _, v, _ in results) else EXIT_OK


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


def _switch(parser: argparse.ArgumentParser, flag: str, help: str) -> None:
  """Adds an on/off flag, off unless given."""
  parser.add_argument(flag, action="store_true", help=help)


def _command(
  sub,
  name: str,
  run: Callable[[argparse.Namespace], int],
  *,
  help: str,
  description: str,
  schema: str,
) -> argparse.ArgumentParser:
  """Adds the subcommand `name`, run by `run`, with the --json flag every command has."""
  p = sub.add_parser(name, help=help, description=description)
  _switch(p, "--json", f"print JSON (schema {schema})")
  p.set_defaults(func=run)
  return p


def _add_inspect(sub) -> None:
  p = _command(
    sub,
    "inspect",
    _cmd_inspect,
    help="list a checkpoint's contents from its metadata",
    description="List a checkpoint's saved values (names, shapes, "
    "dtypes, sizes) grouped by prefix, without reading tensor values.",
    schema="od_guard.inventory/1",
  )
  p.add_argument(
    "path",
    help="checkpoint prefix, .index/.data file, directory, SavedModel "
    "directory, Keras .weights.h5/.h5/.keras file, or a tf.io.gfile URI",
  )
  p.add_argument("--depth", type=_depth, default=3, help="prefix depth of the tree (default 3)")
  _switch(p, "--variables", "with --json: include every saved value, not only the totals")


def _add_diff(sub) -> None:
  p = _command(
    sub,
    "diff",
    _cmd_diff,
    help="compare two checkpoints by key, shape and dtype",
    description="Compare two checkpoints: keys added, removed, and "
    "changed in shape or dtype. Exit 1 when they differ.",
    schema="od_guard.diff/1",
  )
  p.add_argument("a")
  p.add_argument("b")


def _add_check(sub) -> None:
  p = _command(
    sub,
    "check",
    _cmd_check,
    help="preflight an OD API fine-tune: will the checkpoint restore?",
    description="Check a pipeline.config and its fine_tune_checkpoint before "
    "training: path, format, version, checkpoint type, architecture, and (without "
    "--static) the exact restore of the model built by the OD API. Exit 1 when "
    "the policy fails.",
    schema="od_guard.preflight/1",
  )
  p.add_argument(
    "--pipeline_config_path",
    required=True,
    help=f"the pipeline.config (a regular file of at most {_files.CONFIG_LIMIT >> 20} MB, UTF-8)",
  )
  p.add_argument(
    "--checkpoint", help="check this checkpoint instead of train_config.fine_tune_checkpoint"
  )
  p.add_argument(
    "--model_dir", help="the training output directory (checked for stale checkpoints)"
  )
  _switch(p, "--static", "config and checkpoint metadata only: no TensorFlow, milliseconds")
  p.add_argument(
    "--export",
    metavar="TRAINED_CHECKPOINT_DIR",
    help="check an export instead of a fine-tune: exporter_main_v2's "
    "--trained_checkpoint_dir, resolved through its 'checkpoint' state file and matched "
    "against the config's model",
  )
  _switch(
    p,
    "--values",
    "with --static: also read every saved tensor (CRC32C integrity, NaN / Inf), still "
    "without TensorFlow (the full check always does)",
  )
  p.add_argument(
    "--policy",
    default=None,
    choices=["strict", "default", "lenient"],
    help="the policy preset (default: the project file's, else default)",
  )
  p.add_argument(
    "--min_backbone_coverage",
    type=_fraction,
    help="override the policy's minimum restored fraction of backbone parameters",
  )
  p.add_argument(
    "--ignore",
    action="append",
    metavar="CODES",
    help="finding codes (comma-separated, repeatable) that never decide the verdict; "
    "added to the project file's; the report keeps them as facts",
  )
  p.add_argument(
    "--select",
    action="append",
    metavar="CODES",
    help="the only finding codes (comma-separated, repeatable) that may decide the verdict "
    "(replaces the project file's)",
  )
  p.add_argument(
    "--where",
    choices=["training", "repo"],
    default=None,
    help="training: every path the config names must be here, as training needs them "
    "(default); repo: a repository without the data (pre-commit, CI): paths that cannot "
    "exist here (outside the repository, buckets without credentials, files git ignores) "
    "are reported as not checked here",
  )
  _switch(p, "--isolated", "ignore [tool.od_guard] in pyproject.toml / setup.cfg")
  p.add_argument("--tensorboard_dir", help="also write the report there")
  _switch(p, "--verbose", "also list facts (INFO findings)")


def _add_fix(sub) -> None:
  p = _command(
    sub,
    "fix",
    _cmd_fix,
    help="apply the machine-applicable fixes of `check --static` to a pipeline.config",
    description="Run the static check and apply every fix that needs no guess to the "
    "pipeline.config's text (only the edited values change; comments, order and "
    "formatting stay). Prints a unified diff (exit 1 when there is one); --write "
    "replaces the file atomically, keeps <config>.bak, refuses a symbolic link or a file "
    "changed meanwhile, and checks again (exit 1 when that check fails).",
    schema="od_guard.fix/1",
  )
  p.add_argument("--pipeline_config_path", required=True, help="the pipeline.config to fix")
  p.add_argument("--checkpoint", help="check against this checkpoint")
  p.add_argument("--model_dir", help="the training output directory")
  p.add_argument("--policy", default=None, choices=["strict", "default", "lenient"])
  p.add_argument("--ignore", action="append", metavar="CODES", help="as for check")
  p.add_argument("--select", action="append", metavar="CODES", help="as for check")
  p.add_argument("--where", choices=["training", "repo"], default=None, help="as for check")
  _switch(p, "--isolated", "ignore [tool.od_guard] in pyproject.toml / setup.cfg")
  _switch(p, "--write", "write the fixed config (atomically; the original kept as .bak)")


def _add_verify(sub) -> None:
  p = _command(
    sub,
    "verify",
    _cmd_verify,
    help="read every saved tensor: CRC32C integrity and value health (NaN/Inf)",
    description="Stream every tensor of a TF checkpoint's data shards once, in bounded "
    "memory, without TensorFlow: check each against its stored CRC32C, offset and size, "
    "and report NaN / Inf, all-zero and constant tensors, and batch-norm moving variances "
    "<= 0, per component and kind of saved value. Exit 1 on findings.",
    schema="od_guard.verify/1",
  )
  p.add_argument("path", help="a TF checkpoint prefix (or its .index file, or a directory)")
  _switch(p, "--tensors", "with --json: include every tensor's record, not only the bad ones")
  p.add_argument("--tensorboard_dir", help="also write the verification there")


def _add_lint(sub) -> None:
  p = _command(
    sub,
    "lint",
    _cmd_lint,
    help="check a checkpoint's variable names against naming rules",
    description="Check saved variable names against naming rules (presets "
    "odapi, keras, and/or a TOML rules file; see od_guard/naming/rules.py). "
    "Exit 1 on violations: usable in CI and pre-commit.",
    schema="od_guard.lint/1",
  )
  p.add_argument(
    "paths",
    nargs="+",
    metavar="path",
    help="checkpoints (anything `inspect` accepts; several for pre-commit)",
  )
  p.add_argument(
    "--rules",
    help=f"a TOML rules file (a regular file of at most {_files.RULES_LIMIT >> 20} MB; "
    "patterns in RE2 syntax)",
  )
  p.add_argument(
    "--preset",
    action="append",
    choices=["odapi", "keras"],
    help="a preset to apply (repeatable; default odapi when no --rules and no naming_rules "
    "in [tool.od_guard])",
  )
  _switch(p, "--isolated", "ignore [tool.od_guard] in pyproject.toml / setup.cfg")


def _add_remap(sub) -> None:
  p = _command(
    sub,
    "remap",
    _cmd_remap,
    help="write a copy of a checkpoint with its names rewritten",
    description="Rewrite a TF checkpoint's keys (and its object graph) with rename "
    "rules OLD->NEW (OLD a regex at the key's start, NEW its replacement), or with "
    "the map a preflight report proposed. SRC is never modified.",
    schema="od_guard.remap/1",
  )
  p.add_argument("src")
  p.add_argument("dst", help="the new checkpoint prefix")
  p.add_argument(
    "--rule",
    action="append",
    help="OLD->NEW: OLD an RE2 regex matched at the key's start, NEW its replacement "
    "(\\1, \\g<name>); repeatable, the first rule that matches wins",
  )
  p.add_argument(
    "--from-report",
    help="a JSON report (od-guard check --json, the guard's report.json; at most "
    f"{_files.REPORT_LIMIT >> 20} MB)",
  )
  _switch(p, "--overwrite", "replace DST if it exists")


def _add_doctor(sub) -> None:
  p = _command(
    sub,
    "doctor",
    _cmd_doctor,
    help="check this environment for OD API version drift",
    description="Check TF / Keras / tf-keras / protobuf / OD API versions and "
    "the known breakages between them. Exit 1 when something blocks the OD API.",
    schema="od_guard.doctor/1",
  )
  _switch(p, "--deep", "also import object_detection.model_lib_v2 in a subprocess (5-15 s)")
  p.add_argument(
    "--pipeline_config_path",
    help="the config training will use: also check that TensorFlow can read the storage "
    "of it, its fine_tune_checkpoint and its input files (s3:// needs tensorflow-io)",
  )
  p.add_argument(
    "--model_dir", help="the training output directory: also check TensorFlow can use its storage"
  )


def build_parser() -> argparse.ArgumentParser:
  parser = _Parser(
    prog="od-guard", description=("Check checkpoints before training starts on the wrong weights.")
  )
  parser.add_argument(
    "--version",
    action=_VersionAction,
    help="show the versions of od_guard, Python, TensorFlow, protobuf and the OD API, and exit",
  )
  sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
  _add_inspect(sub)
  _add_diff(sub)
  _add_check(sub)
  _add_fix(sub)
  _add_verify(sub)
  _add_lint(sub)
  _add_remap(sub)
  _add_doctor(sub)
  return parser


def main(argv: Sequence[str] | None = None) -> int:
  """Runs the command; returns its exit code."""
  argv = list(sys.argv[1:] if argv is None else argv)
  try:
    try:
      args = build_parser().parse_args(argv)
    except _ArgumentError as e:
      raise errors.UsageError(
        f"{e.prog}: {e.message}.", received=" ".join(argv), fix=f"See `{e.prog} --help`."
      ) from None
    return args.func(args)
  except errors.OdGuardError as e:
    json_mode = "--json" in argv
    if json_mode:
      _print_json(e.to_dict())
    print(f"od-guard: error: {type(e).__name__}: {e.format()}", file=sys.stderr)
    return e.exit_code
  except KeyboardInterrupt:
    print("od-guard: interrupted", file=sys.stderr)
    return 130
  except BrokenPipeError:  # `od-guard ... | head`: the reader left; not an error
    sys.stderr.close()
    return EXIT_OK


def run() -> None:
  """Console-script entry point."""
  sys.exit(main())


if __name__ == "__main__":
  run()
