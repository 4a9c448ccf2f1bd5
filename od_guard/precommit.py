"""pre-commit's entry point for `od-guard check --static` (.pre-commit-hooks.yaml).

pre-commit passes every staged file a hook matches in one call, and
`od-guard check` takes one pipeline.config, so this runs the static check once
per config (config and checkpoint metadata; no TensorFlow, no OD API needed)
and exits with the worst exit code: 0 when every verdict passes or warns, 1
when one fails its policy, 2 when a config cannot be read. `od-guard lint`
takes many paths itself and needs no adapter.

    python -m od_guard.precommit [--policy P] [--min_backbone_coverage F] [--verbose] CONFIG...
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
  parser.add_argument("--verbose", action="store_true")
  args = parser.parse_args(argv)
  options = []
  if args.policy:
    options += ["--policy", args.policy]
  if args.min_backbone_coverage is not None:
    options += ["--min_backbone_coverage", args.min_backbone_coverage]
  if args.verbose:
    options.append("--verbose")
  worst = cli.EXIT_OK
  for config in args.configs:
    print(f"== {config}", flush=True)
    code = cli.main(["check", "--static", "--pipeline_config_path", config, *options])
    sys.stdout.flush()
    worst = max(worst, code)
  return worst


if __name__ == "__main__":
  sys.exit(main())
