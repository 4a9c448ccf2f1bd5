"""Folding long lists of checkpoint keys into readable prefix groups.

Reports list hundreds of keys; a person reads ``backbone/layer_with_weights-{0..130}``
far faster than 131 lines. These helpers fold by shared prefix and by numbered
siblings.
"""

from __future__ import annotations

from collections.abc import Iterable
import re

from od_guard.checkpoint import limits

# A trailing number of at most MAX_NUMBER_DIGITS digits (longer runs of digits
# are names, not counters).
_NUMBERED = re.compile(r"^(?P<stem>.*?)(?P<num>\d{1,%d})$" % limits.MAX_NUMBER_DIGITS)  # noqa: UP031
_DIGITS = re.compile(r"(\d+)")


def _number_key(digits: str) -> tuple[int, str]:
  # Numeric order for any length, without int() (whose digit limit a name can pass).
  significant = digits.lstrip("0")
  return (len(significant), significant)


def natural_key(text: str) -> list:
  """Sort key that orders 'layer-2' before 'layer-10'."""
  parts = _DIGITS.split(text)
  # split() puts the digit runs at the odd positions.
  return [_number_key(t) if i % 2 else t for i, t in enumerate(parts)]


def fold_numbered(names: Iterable[str], *, min_run: int = 4) -> list[str]:
  """Folds sibling names that differ only by a trailing number.

  ``['conv1', 'conv2', 'conv3', 'conv4', 'head']`` becomes
  ``['conv{1..4}', 'head']`` when at least `min_run` share a stem.
  """
  names = sorted(set(names), key=natural_key)
  by_stem: dict[str, list[int]] = {}
  for n in names:
    m = _NUMBERED.match(n)
    if m:
      by_stem.setdefault(m.group("stem"), []).append(int(m.group("num")))
  out = []
  done = set()
  for n in names:
    m = _NUMBERED.match(n)
    if m and len(by_stem[m.group("stem")]) >= min_run:
      stem = m.group("stem")
      if stem not in done:
        nums = by_stem[stem]
        out.append(f"{stem}{{{min(nums)}..{max(nums)}}} ({len(nums)})")
        done.add(stem)
    else:
      out.append(n)
  return out


def fold_keys(keys: Iterable[str], *, depth: int = 3, limit: int = 12) -> list[str]:
  """Folds keys into at most `limit` lines: whole keys when few, else prefixes.

  Each folded line reads ``prefix/... (N keys)``.
  """
  keys = sorted(set(keys), key=natural_key)
  if len(keys) <= limit:
    return keys
  groups: dict[str, int] = {}
  for k in keys:
    parts = k.split("/")
    prefix = "/".join(parts[:depth])
    groups[prefix] = groups.get(prefix, 0) + 1
  lines = [
    f"{p}/... ({n} keys)" if n > 1 else p
    for p, n in sorted(groups.items(), key=lambda kv: natural_key(kv[0]))
  ]
  if len(lines) > limit and depth > 1:
    return fold_keys(keys, depth=depth - 1, limit=limit)
  if len(lines) > limit:
    rest = sum(groups[p] for p in sorted(groups)[limit - 1 :])
    lines = lines[: limit - 1] + [f"... and {rest} more keys"]
  return lines
