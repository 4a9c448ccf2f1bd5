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

from collections.abc import Sequence
import sys

from od_guard import errors
from od_guard.cli._common import EXIT_BAD_INPUT
from od_guard.cli._common import EXIT_FINDINGS
from od_guard.cli._common import EXIT_OK
from od_guard.cli._common import print_json as _print_json
from od_guard.cli.parser import _ArgumentError
from od_guard.cli.parser import build_parser

__all__ = ["EXIT_BAD_INPUT", "EXIT_FINDINGS", "EXIT_OK", "build_parser", "main", "run"]


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
    if getattr(args, "remote_timeout", None) is not None:
      from od_guard.checkpoint import remote

      remote.configure(args.remote_timeout)  # validated there: a typed UsageError
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


if __name__ == "__main__":
  run()
