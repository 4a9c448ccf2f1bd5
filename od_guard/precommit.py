"""pre-commit's entry point for `od-guard check --static` (.pre-commit-hooks.yaml).

pre-commit passes every staged file a hook matches in one call, and
`od-guard check` takes one pipeline.config, so this runs the static check once
per config (config and checkpoint metadata; no TensorFlow, no OD API needed)
and exits with the worst exit code: 0 when every verdict passes or warns, 1
when one fails its policy, 2 when a config cannot be read. `od-guard lint`
takes many paths itself and needs no adapter.

A repository rarely holds the data its configs name (the TFRecords and the
zoo checkpoint live on the training machine or in a bucket), so the hook
checks `--where repo` unless told `--where training` (here or in
`[tool.od_guard]`): paths that cannot exist here are "not checked here",
everything decidable from the config and the committed files still fails.

    python -m od_guard.precommit [--policy P] [--min_backbone_coverage F]
        [--ignore CODES] [--select CODES] [--where repo|training] [--isolated]
        [--verbose] CONFIG...
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
import sys

from od_guard import cli


def main(argv: Sequence[str] | None = None) -> int:
  """Checks each config; returns the worst exit code."""
  parser = argparse.ArgumentParser(
    prog="python -m od_guard.precommit",
    description="Run `od-guard check --static` on each pipeline.config given (for pre-commit).",
  )
  parser.add_argument("configs", nargs="*", metavar="CONFIG", help="pipeline.config files")
  parser.add_argument("--policy", choices=["strict", "default", "lenient"], default=None)
  parser.add_argument("--min_backbone_coverage", default=None)
  parser.add_argument("--ignore", action="append", default=[], metavar="CODES")
  parser.add_argument("--select", action="append", default=[], metavar="CODES")
  parser.add_argument("--where", choices=["training", "repo"], default=None)
  parser.add_argument("--isolated", action="store_true")
  parser.add_argument("--verbose", action="store_true")
  args = parser.parse_args(argv)
  options = []
  for flag in ("ignore", "select"):
    for codes in getattr(args, flag):
      options += [f"--{flag}", codes]
  if args.isolated:
    options.append("--isolated")
  if args.policy:
    options += ["--policy", args.policy]
  if args.min_backbone_coverage is not None:
    options += ["--min_backbone_coverage", args.min_backbone_coverage]
  if args.verbose:
    options.append("--verbose")
  worst = cli.EXIT_OK
  for config in args.configs:
    print(f"== {config}", flush=True)
    where = args.where or _where_of_project(config, args.isolated) or "repo"
    code = cli.main(
      ["check", "--static", "--pipeline_config_path", config, "--where", where, *options]
    )
    sys.stdout.flush()
    worst = max(worst, code)
  return worst


def _where_of_project(config: str, isolated: bool) -> str | None:
  """The project file's `where`, so that `where = "training"` there is kept
  (an unreadable project file is left for the check to report)."""
  if isolated:
    return None
  from od_guard import errors
  from od_guard import project_config

  try:
    return project_config.discover(config).where
  except errors.OdGuardError:
    return None


if __name__ == "__main__":
  sys.exit(main())
