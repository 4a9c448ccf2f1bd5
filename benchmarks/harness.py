"""What the benchmarks share: the processes they time run od_guard from this
checkout; each takes --rounds, works in a scratch directory it removes, reports
progress on stderr and prints one JSON line."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator
import contextlib
import json
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parent.parent
# The environment of the timed processes: od_guard from this checkout, TF quiet.
ENV = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="3")
# The benchmarks' own imports: od_guard from this checkout and the test-only helpers
# (tests/support, imported as `support`), which the wheel does not ship.
for _path in (REPO, REPO / "tests"):
  if str(_path) not in sys.path:
    sys.path.insert(0, str(_path))


def compile_package() -> None:
  """Compiles od_guard's bytecode, as `pip install` does for an installed
  package. The development install is editable, and a machine that sets
  PYTHONDONTWRITEBYTECODE (this one does) never writes it: every timed process
  would then first compile od_guard's sources, which no user's install does."""
  import compileall

  compileall.compile_dir(str(REPO / "od_guard"), quiet=1)


def parser(doc: str, *, rounds: int) -> argparse.ArgumentParser:
  """The benchmark's command line (described by the first line of `doc`), with --rounds.

  Also compiles od_guard's bytecode (`compile_package`)."""
  compile_package()
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


def run_process(
  argv: list[str], ok: tuple[int, ...] = (0,), *, env: dict[str, str] | None = None
) -> tuple[float, float, str]:
  """Runs a process (`env` added to ENV); returns (wall seconds, its peak RSS
  in MB, its stdout)."""
  start = time.perf_counter()
  proc = subprocess.Popen(
    argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env={**ENV, **(env or {})}
  )
  out = proc.stdout.read()
  _, status, usage = os.wait4(proc.pid, 0)
  elapsed = time.perf_counter() - start
  code = os.waitstatus_to_exitcode(status)
  if code not in ok:
    raise SystemExit(f"benchmark step failed ({code}): {' '.join(argv[:4])}")
  return elapsed, usage.ru_maxrss / 1024, out.decode()


def measure(
  rounds: int,
  steps: dict[str, tuple[list[str], Callable[[float, str], float]]],
  *,
  ok=(0,),
  walls: dict[str, list[float]] | None = None,
  env: dict[str, dict[str, str]] | None = None,
) -> tuple[dict[str, list[float]], dict[str, float]]:
  """Runs each step's process once a round; `steps[name] = (argv, seconds_of)`
  where seconds_of(wall seconds, stdout) picks the time to record. With
  `walls`, each process's whole wall time is also appended to walls[name];
  `env[name]` adds variables to that step's environment.

  Returns:
    (seconds per step per round, peak RSS in MB per step).
  """
  secs: dict[str, list[float]] = {name: [] for name in steps}
  rss = dict.fromkeys(steps, 0.0)
  for r in range(rounds):
    for name, (argv, seconds_of) in steps.items():
      wall, peak, out = run_process(argv, ok, env=(env or {}).get(name))
      if walls is not None:
        walls.setdefault(name, []).append(wall)
      secs[name].append(seconds_of(wall, out))
      rss[name] = max(rss[name], peak)
    progress(f"round {r + 1}/{rounds}: " + " ".join(f"{n}={s[-1]:.3f}s" for n, s in secs.items()))
  return secs, rss


def last_json_seconds(_wall: float, out: str) -> float:
  """The 'seconds' a step measured itself: its stdout is JSON, or ends in a JSON line."""
  try:
    return json.loads(out)["seconds"]
  except json.JSONDecodeError:
    return json.loads(out.strip().splitlines()[-1])["seconds"]


def wall_seconds(wall: float, _out: str) -> float:
  return wall


def checkpoint_arguments(p: argparse.ArgumentParser, *, variables: int) -> None:
  """--variables, --gigabytes and --workdir, for benchmarks over a written checkpoint."""
  p.add_argument("--variables", type=int, default=variables)
  p.add_argument("--gigabytes", type=float, default=2.0)
  p.add_argument("--workdir", default=None, help="default: a temporary directory")


def write_checkpoint(
  script: str, script_args: list[str], workdir: pathlib.Path, *, variables: int, width: int
) -> tuple[str, int]:
  """Runs `script` (which writes `variables` float32 tensors of `width` to the
  prefix given last and prints it); returns (prefix, bytes on disk)."""
  progress(
    f"writing {variables:,} variables x {width:,} floats "
    f"({variables * width * 4 / 1e9:.2f} GB) to {workdir} ..."
  )
  start = time.perf_counter()
  _, _, out = run_process([sys.executable, "-c", script, *script_args, str(workdir / "ckpt")])
  progress(f"written in {time.perf_counter() - start:.0f} s")
  return out.strip().splitlines()[-1], sum(p.stat().st_size for p in workdir.iterdir())
