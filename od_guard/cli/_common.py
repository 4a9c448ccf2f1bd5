"""What the od-guard commands share: exit codes, the JSON printer, --tensorboard_dir
and the project file ([tool.od_guard])."""

from __future__ import annotations

import argparse
from collections.abc import Callable
import json
import os
import sys

from od_guard import errors

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_BAD_INPUT = 2


def print_json(payload: dict) -> None:
  # One write: json.dump with indent streams thousands of small ones.
  sys.stdout.write(json.dumps(payload, indent=2) + "\n")


def tensorboard_dir(path: str | None) -> str | None:
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


def write_tensorboard(write: Callable[[str], object], logdir: str) -> None:
  """Writes the event file; an OS error (permission, disk full) is a typed error."""
  try:
    write(logdir)
  except OSError as e:
    raise errors.UsageError(
      f"Cannot write the TensorBoard events to {logdir!r}: {e.strerror or e}.",
      received=f"--tensorboard_dir {logdir}",
      fix="Pass a directory the user running od_guard may write to.",
    ) from e


def project(args: argparse.Namespace, start: str):
  """The project file's settings ([tool.od_guard]), unless --isolated."""
  from od_guard import project_config

  if getattr(args, "isolated", False):
    return project_config.ProjectConfig()
  return project_config.discover(start)
