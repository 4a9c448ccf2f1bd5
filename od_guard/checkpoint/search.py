"""Finds the checkpoint a user most likely meant, near a path that names none.

A bounded walk, safe on hostile trees: a fixed depth below each starting
folder, a fixed number of directory entries in all, symlinked directories not
followed, each real directory visited once. No TensorFlow: a checkpoint is a
`<prefix>.index` file.
"""

from __future__ import annotations

import dataclasses
import os
import re

from od_guard import errors
from od_guard.checkpoint import fileio

MAX_DEPTH = 3
MAX_ENTRIES = 20_000
# The same checkpoint name, or a TF2 ckpt-N for a TF1 name in a shared folder.
_MIN_SCORE = 40
_CKPT_NUMBER = re.compile(r"-(\d+)$")


@dataclasses.dataclass(frozen=True)
class Candidate:
  """A checkpoint prefix found near the given path, and how it relates to it."""

  prefix: str
  score: int
  reason: str


def _parts(path: str) -> list[str]:
  return [p for p in re.split(r"[\\/]+", path) if p and p not in (".", "..")]


def _walk(root: str, depth: int, budget: list[int], seen: set[str], out: list[str]) -> None:
  """Collects `*.index` prefixes below `root`, bounded by depth and entries."""
  try:
    real = os.path.realpath(root)
  except OSError:
    return
  if real in seen or budget[0] <= 0:
    return
  seen.add(real)
  try:
    with os.scandir(root) as it:
      entries = []
      for entry in it:
        budget[0] -= 1
        if budget[0] <= 0:
          break
        entries.append(entry)
  except OSError:
    return
  for entry in entries:
    try:
      if entry.is_file(follow_symlinks=False) and entry.name.endswith(".index"):
        out.append(entry.path[: -len(".index")])
      elif depth > 0 and entry.is_dir(follow_symlinks=False):
        _walk(entry.path, depth - 1, budget, seen, out)
    except OSError:
      continue


def _score(given: str, prefix: str, context: tuple[str, ...] = ()) -> tuple[int, str]:
  """How well a found prefix fits the path the user wrote (higher is better);
  `context` holds the folder names above the nearest existing folder of it."""
  want = _parts(given)
  have = _parts(prefix)
  score = 0
  reasons = []
  name = want[-1] if want else ""
  found_name = have[-1] if have else ""
  if found_name == name:
    score += 50
    reasons.append("same checkpoint name")
  elif name.startswith("model.ckpt") and _CKPT_NUMBER.search(found_name):
    score += 30
    reasons.append("the TF2 checkpoint in place of a TF1 model.ckpt name")
  elif _CKPT_NUMBER.search(found_name):
    score += 10
  # Folders above the one the search started from say only where it looked (every
  # checkpoint under /home/user/... shares them): they do not make a guess related.
  shared = (set(want[:-1]) & set(have[:-1])) - set(context)
  score += 10 * len(shared)
  if shared:
    reasons.append("shares folder " + ", ".join(sorted(shared)))
  if len(have) > 1 and have[-2] == "checkpoint":
    score += 15
  if "saved_model" in have or found_name == "variables":
    score -= 60
  if found_name.endswith(".tempstate") or "temp_worker" in prefix:
    score -= 60
  # Prefer the lowest-numbered of a series only as a tie-break (ckpt-0 of a zoo model).
  m = _CKPT_NUMBER.search(found_name)
  if m:
    score -= min(int(m.group(1)), 9) // 5
  return score, "; ".join(reasons)


def starting_points(given: str, *, config_dir: str | None, cwd: str) -> list[str]:
  """Where to look: the nearest existing folder of the given path and up to two
  of its parents, the config's folder, the working directory."""
  starts: list[str] = []
  path = given.replace("\\", "/") if os.sep == "/" else given
  if not os.path.isabs(path):
    path = os.path.join(cwd, path)
  folder = os.path.dirname(os.path.normpath(path))
  while folder and not os.path.isdir(folder):
    parent = os.path.dirname(folder)
    if parent == folder:
      break
    folder = parent
  for _ in range(3):
    if folder and os.path.isdir(folder):
      starts.append(folder)
    parent = os.path.dirname(folder)
    if parent == folder:
      break
    folder = parent
  for extra in (config_dir, cwd):
    if extra and os.path.isdir(extra):
      starts.append(extra)
  unique = []
  for s in starts:
    if os.path.abspath(s) not in unique:
      unique.append(os.path.abspath(s))
  return unique


def find_near(
  given: str,
  *,
  config_dir: str | None = None,
  cwd: str | None = None,
  max_depth: int = MAX_DEPTH,
  max_entries: int = MAX_ENTRIES,
) -> Candidate | None:
  """The checkpoint prefix most likely meant by `given`, or None.

  Args:
    given: the path as written (may not exist; Windows separators allowed).
    config_dir: the pipeline config's folder (searched too).
    cwd: the working directory (default: the current one).
    max_depth: levels below each starting folder.
    max_entries: directory entries read in all.
  """
  cwd = cwd or os.getcwd()
  budget = [max_entries]
  seen: set[str] = set()
  found: list[str] = []
  starts = starting_points(given, config_dir=config_dir, cwd=cwd)
  # The nearest folders first, shallow; the wider ones share what budget is left.
  for start in starts:
    _walk(start, max_depth, budget, seen, found)
  context = tuple(_parts(os.path.dirname(starts[0]))) if starts else ()
  anchor = _parts(starts[0]) if starts else []
  best: Candidate | None = None
  best_key: tuple[int, int, str] | None = None
  for prefix in dict.fromkeys(os.path.abspath(p) for p in found):
    score, reason = _score(given, prefix, context)
    if score < _MIN_SCORE:
      continue  # an unrelated checkpoint that merely lies near: no guess
    # Ties go to the candidate nearest the given path's existing folder.
    key = (score, _common_length(anchor, _parts(prefix)), prefix)
    if (
      best_key is None
      or key[:2] > best_key[:2]
      or (key[:2] == best_key[:2] and prefix < best_key[2])
    ):
      best, best_key = Candidate(prefix, score, reason), key
  return best


def _common_length(a: list[str], b: list[str]) -> int:
  n = 0
  while n < min(len(a), len(b)) and a[n] == b[n]:
    n += 1
  return n


def read_int64_scalar(prefix: str, key: str) -> int | None:
  """The value of a saved int64 scalar (e.g. the training step), or None when
  the checkpoint, the key or its data shard is not there."""
  from od_guard.checkpoint import tensor_bundle

  try:
    index = tensor_bundle.read_index(prefix + ".index")
  except (errors.OdGuardError, OSError):  # an unreadable index answers None
    return None
  entry = next((e for e in index.entries if e.key == key), None)
  if entry is None or entry.dtype not in ("int64", "int32") or entry.shape != ():
    return None
  path = tensor_bundle.shard_path(prefix, entry.shard_id, index.header.num_shards)
  try:
    with fileio.open_binary(path) as f:
      f.seek(entry.offset)
      raw = f.read(entry.size)
  except (errors.OdGuardError, OSError):
    return None
  if len(raw) != entry.size or entry.size not in (4, 8):
    return None
  return int.from_bytes(raw, "big" if index.header.big_endian else "little", signed=True)
