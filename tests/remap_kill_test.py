"""SIGKILL at random instants during `remap`, `remap --overwrite` and the
save-time quarantine; then the next run. TF-free (marker `plain`).

Each kill: a fresh interpreter imports od_guard, says READY, and runs the
operation; the test kills it after a random delay drawn over the operation's
measured duration (only kills that found the process still running count).
Then: the source is byte-identical; the destination is absent, the old
checkpoint or the new one (byte-identical to a reference remap, itself checked
value by value against the source), or holds a journal that the next run
completes; after the next run, no temporary file or journal is left.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time

import pytest
from support.checkpoints import leftovers
from support.checkpoints import state
from support.checkpoints import write_checkpoint
from support.file_digests import directory_hashes
from support.file_digests import prefix_hashes

from od_guard.naming import remap
from od_guard.naming import save_guard

from conftest import REPO

pytestmark = pytest.mark.plain

RULE = "model/a/->model/b/"
KILLS = {"new": 30, "overwrite": 20, "quarantine": 12}
# 1,000 tensors and ~7 MB: remap takes ~0.1-0.2 s after the imports, spent in
# every phase (index, object graph, copy, index writing, checks, commit).
SIZES = [256] * 1000 + [1 << 18] * 6

_CHILD = """
import sys, time
from od_guard.naming import remap, rules, save_guard
op, path, dst = sys.argv[1:4]
print("READY", flush=True)
t = time.perf_counter()
if op == "quarantine":
  try:
    save_guard.check_saved(path, rules.preset("odapi"), mode="error")
  except save_guard.NamingViolationError:
    pass
else:
  remap.remap(path, dst, [remap.Rule.parse("model/a/->model/b/")], overwrite=op == "overwrite")
print("SECONDS", time.perf_counter() - t, flush=True)
"""


def _start(op: str, path: str, dst: str) -> subprocess.Popen:
  p = subprocess.Popen(
    [sys.executable, "-c", _CHILD, op, path, dst],
    stdout=subprocess.PIPE,
    stderr=subprocess.PIPE,
    text=True,
    env=dict(os.environ, PYTHONPATH=str(REPO)),
  )
  line = p.stdout.readline()
  assert line.strip() == "READY", p.stderr.read()
  return p


def _duration(op: str, path: str, dst: str) -> float:
  p = _start(op, path, dst)
  out, err = p.communicate(timeout=60)
  assert p.returncode == 0, err
  return float(out.split()[-1])


class _Timing:
  """The operation's duration, measured once, then followed (a run that
  finished before its kill reports how long it took)."""

  def __init__(self, seconds: float):
    self.seconds = seconds

  def update(self, out: str) -> None:
    words = out.split()
    if len(words) >= 2 and words[-2] == "SECONDS":
      self.seconds = 0.5 * self.seconds + 0.5 * float(words[-1])


def _kill_at_random(op: str, path: str, dst: str, timing: _Timing, rng: random.Random) -> bool:
  """Runs `op`, SIGKILLs it after a random delay; True if the kill hit it
  while it ran."""
  p = _start(op, path, dst)
  # Half the kills anywhere in the operation, half in its last 40% (the
  # commit, the checks): both drawn over the measured duration.
  span = (0.0, 1.0) if rng.random() < 0.5 else (0.6, 1.0)
  time.sleep(timing.seconds * rng.uniform(*span))
  alive = p.poll() is None
  p.send_signal(signal.SIGKILL)
  out, _ = p.communicate(timeout=60)
  if p.returncode != -signal.SIGKILL:
    timing.update(out)
  return alive and p.returncode == -signal.SIGKILL


@pytest.fixture(scope="module")
def world(tmp_path_factory):
  root = tmp_path_factory.mktemp("kill")
  src = write_checkpoint(str(root / "src" / "ckpt"), SIZES)
  ref = str(root / "ref" / "ckpt")
  remap.remap(src, ref, [remap.Rule.parse(RULE)])
  old = str(root / "old" / "ckpt")
  remap.remap(src, old, [remap.Rule.parse("model/a/->model/old/")])
  # The reference holds the source's values under the new names.
  expected = {k.replace("model/a/", "model/b/"): v for k, v in state(src).items()}
  got = state(ref)
  assert {k: v for k, v in got.items() if k != "_CHECKPOINTABLE_OBJECT_GRAPH"} == {
    k: v for k, v in expected.items() if k != "_CHECKPOINTABLE_OBJECT_GRAPH"
  }
  assert got["_CHECKPOINTABLE_OBJECT_GRAPH"] == tuple(
    sorted(k for k in expected if k != "_CHECKPOINTABLE_OBJECT_GRAPH")
  )
  return root, src, ref, old


@pytest.mark.parametrize("op", ["new", "overwrite"])
def test_sigkill_during_remap(world, op):
  root, src, ref, old = world
  before = directory_hashes(os.path.dirname(src))
  new_files, old_files = prefix_hashes(ref), prefix_hashes(old)
  absent = {".index": None, ".data-00000-of-00001": None}
  rng = random.Random(f"remap-{op}")
  timing = _Timing(_duration(op, src, str(root / f"calibrate-{op}" / "ckpt")))
  kills = tries = journals = 0
  outcomes = set()
  while kills < KILLS[op]:
    tries += 1
    assert tries < KILLS[op] * 6, f"only {kills} of {tries} kills hit a running remap"
    d = root / f"{op}-{tries}"
    dst = str(d / "ckpt")
    if op == "overwrite":
      d.mkdir()
      for suffix in (".index", ".data-00000-of-00001"):
        shutil.copy(old + suffix, dst + suffix)
    if not _kill_at_random(op, src, dst, timing, rng):
      continue
    kills += 1
    assert directory_hashes(os.path.dirname(src)) == before
    now = prefix_hashes(dst)
    journal = os.path.exists(dst + ".od_guard-journal")
    if journal:
      journals += 1
      outcomes.add("journal")
    else:
      assert now in (absent, old_files if op == "overwrite" else absent, new_files), now
      outcomes.add("new" if now == new_files else "old" if now == old_files else "absent")
    # The next run: completes an interrupted commit, removes leftovers.
    try:
      result = remap.remap(src, dst, [remap.Rule.parse(RULE)], overwrite=op == "overwrite")
      assert result.verified
    except remap.RemapError as e:
      assert e.what == "The destination checkpoint exists." and (now == new_files or journal)
    assert prefix_hashes(dst) == new_files
    assert leftovers(d) == []
    assert directory_hashes(os.path.dirname(src)) == before
    shutil.rmtree(d)
  print(f"{op}: {kills} kills in {tries} runs; outcomes {sorted(outcomes)}, {journals} journals")


def test_sigkill_during_quarantine(tmp_path):
  rng = random.Random("quarantine")
  master = write_checkpoint(
    str(tmp_path / "master" / "ckpt-1"), [16] * 2000, scope="CustomExtractor"
  )
  original = prefix_hashes(master)

  def fresh(d):
    d.mkdir()
    for suffix in (".index", ".data-00000-of-00001"):
      shutil.copy(master + suffix, d / ("ckpt-1" + suffix))
    (d / "checkpoint").write_text(
      'model_checkpoint_path: "ckpt-1"\nall_model_checkpoint_paths: "ckpt-1"\n'
    )
    return str(d / "ckpt-1")

  timing = _Timing(_duration("quarantine", fresh(tmp_path / "calibrate"), "-"))
  kills = tries = 0
  outcomes = set()
  while kills < KILLS["quarantine"]:
    tries += 1
    assert tries < KILLS["quarantine"] * 6
    d = tmp_path / f"q{tries}"
    prefix = fresh(d)
    if not _kill_at_random("quarantine", prefix, "-", timing, rng):
      continue
    kills += 1
    here, moved = prefix_hashes(prefix), prefix_hashes(prefix + ".quarantined")
    state_file = (d / "checkpoint").exists()
    # Whole under one name or the other; the state file names it only while
    # it is whole under its own name.
    assert here == original or moved == original
    assert not state_file or here == original
    save_guard.recover_quarantines(str(d))  # what the next save's check does first
    here, moved = prefix_hashes(prefix), prefix_hashes(prefix + ".quarantined")
    if moved == original:
      assert here[".index"] is None and not (d / "checkpoint").exists()
    else:
      assert here == original and (d / "checkpoint").exists()
    assert leftovers(d) == []
    outcomes.add("quarantined" if moved == original else "kept")
  print(f"quarantine: {kills} kills in {tries} runs; outcomes {sorted(outcomes)}")
