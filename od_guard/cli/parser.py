"""The command line of `od-guard`: one `_add_NAME` per command, and `build_parser`.
Usage errors are typed od_guard errors (exit 2), not argparse's own exit."""

from __future__ import annotations

import argparse
from collections.abc import Callable
import sys

from od_guard import _files
from od_guard.cli import check
from od_guard.cli import commands


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


def _fraction(value: str) -> float:
  try:
    f = float(value)
  except ValueError:
    f = -1.0
  if not 0.0 <= f <= 1.0:
    raise argparse.ArgumentTypeError(f"must be a fraction between 0 and 1, got {value!r}")
  return f


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
  """Adds the subcommand `name`, run by `run`, with the flags every command has
  (--json, --remote_timeout)."""
  p = sub.add_parser(name, help=help, description=description)
  _switch(p, "--json", f"print JSON (schema {schema})")
  p.add_argument(
    "--remote_timeout",
    metavar="SECONDS",
    help="how long a request to object storage (gs://, s3://) may go unanswered before a "
    "typed error (default 20; also OD_GUARD_REMOTE_TIMEOUT)",
  )
  p.set_defaults(func=run)
  return p


def _add_inspect(sub) -> None:
  p = _command(
    sub,
    "inspect",
    commands._cmd_inspect,
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
    commands._cmd_diff,
    help="compare two checkpoints by key, shape and dtype",
    description="Compare two checkpoints: keys added, removed, and "
    "changed in shape or dtype. Exit 1 when they differ.",
    schema="od_guard.diff/1",
  )
  p.add_argument("a")
  p.add_argument("b")


def _add_config_flags(p: argparse.ArgumentParser) -> None:
  """The config and what it is checked against (check, fix)."""
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


def _add_policy_flags(p: argparse.ArgumentParser) -> None:
  """How findings are judged and where the check runs (check, fix)."""
  p.add_argument(
    "--policy",
    default=None,
    choices=["strict", "default", "lenient"],
    help="the policy preset (default: the project file's, else default)",
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


def _add_check(sub) -> None:
  p = _command(
    sub,
    "check",
    check._cmd_check,
    help="preflight an OD API fine-tune: will the checkpoint restore?",
    description="Check a pipeline.config and its fine_tune_checkpoint before "
    "training: path, format, version, checkpoint type, architecture, and (without "
    "--static) the exact restore of the model built by the OD API. Exit 1 when "
    "the policy fails.",
    schema="od_guard.preflight/1",
  )
  _add_config_flags(p)
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
  _add_policy_flags(p)
  p.add_argument(
    "--min_backbone_coverage",
    type=_fraction,
    help="override the policy's minimum restored fraction of backbone parameters",
  )
  p.add_argument("--tensorboard_dir", help="also write the report there")
  _switch(p, "--verbose", "also list facts (INFO findings)")


def _add_fix(sub) -> None:
  p = _command(
    sub,
    "fix",
    check._cmd_fix,
    help="apply the machine-applicable fixes of `check --static` to a pipeline.config",
    description="Run the static check and apply every fix that needs no guess to the "
    "pipeline.config's text (only the edited values change; comments, order and "
    "formatting stay). Prints a unified diff (exit 1 when there is one); --write "
    "replaces the file atomically, keeps <config>.bak, refuses a symbolic link or a file "
    "changed meanwhile, and checks again (exit 1 when that check fails).",
    schema="od_guard.fix/1",
  )
  _add_config_flags(p)
  _add_policy_flags(p)
  _switch(p, "--write", "write the fixed config (atomically; the original kept as .bak)")


def _add_verify(sub) -> None:
  p = _command(
    sub,
    "verify",
    commands._cmd_verify,
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
    commands._cmd_lint,
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
    commands._cmd_remap,
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
    commands._cmd_doctor,
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
