"""What the benchmarks share: the processes they time run od_guard from this
checkout; each takes --rounds, works in a scratch directory it removes, reports
progress on stderr and prints one JSON line."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
import contextlib
import json
import os
import pathlib
import shutil
import statistics
import sys
import tempfile

REPO = pathlib.Path(__file__).resolve().parent.parent
# The environment of the timed processes: od_guard from this checkout, TF quiet.
ENV = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="3")


def parser(doc: str, *, rounds: int) -> argparse.ArgumentParser:
  """The benchmark's command line (described by the first line of `doc`), with --rounds."""
  p = argparse.ArgumentParser(description=doc.splitlines()[0])
  p.add_argument("--rounds", type=int, default=rounds)
  return p


@contextlib.contextmanager
def workdir(prefix: str, path: str | None = None) -> Iterator[pathlib.Path]:
  """A scratch directory: `path` if given (kept), else a temporary one (removed)."""
  if path:
    kept = pathlib.Path(path)
    kept.mkdir(parents=True, exist_ok=True)
    yield kept
    return
  scratch = pathlib.Path(tempfile.mkdtemp(prefix=prefix))
  try:
    yield scratch
  finally:
    shutil.rmtree(scratch, ignore_errors=True)


def progress(message: str) -> None:
  print(message, file=sys.stderr, flush=True)


def medians(samples: dict[str, list[float]]) -> dict[str, float]:
  return {name: statistics.median(values) for name, values in samples.items()}


def emit(benchmark: str, results: dict) -> None:
  """Prints the benchmark's one JSON line."""
  print(json.dumps({"benchmark": benchmark, **results}))
