"""Rename rules: ``OLD->NEW`` rewrites of checkpoint keys, as pure data.

A rule is ``OLD->NEW``: OLD is a regular expression (RE2 syntax,
`naming.patterns`) matched at the start of a checkpoint key, NEW its
replacement (``\\1`` for groups). The first rule that matches a key rewrites it
(`rename`); `rename_keys` renames a checkpoint's keys and refuses collisions.
`rules_from_report` turns the rename map of a preflight report
(`report_renames.read_rename_map`) into rules. Nothing here reads or writes a
checkpoint: that is `remap`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
import dataclasses
import itertools
import re

import re2

from od_guard import errors
from od_guard.naming import patterns
from od_guard.naming import report_renames


class RemapError(errors.OdGuardError):
  """The rename cannot be applied as asked."""


_MAX_GROUPS = 100_000  # groups in one rule's OLD part (NEW is checked against each)
_MANY_RULES = 8  # with more rules than this, keys are matched against all at once
_PRIVATE_USE = (range(0xE000, 0xF900), range(0xF0000, 0xFFFFE), range(0x100000, 0x10FFFE))
_OLD_FIX = (
  "Fix the pattern (RE2 syntax: Python's `re` less backreferences and lookaround); "
  "escape special characters such as ( ) [ ] . * + ? with a backslash."
)


def _text(data: bytes) -> str:
  return data.decode("utf-8", "surrogatepass")


def _template(new: str, program, received: str) -> tuple[str | int, ...]:
  """NEW, checked against OLD's groups, as pieces: text, or a group's number.

  NEW means what it means to Python's `re.sub` (``\\1``, ``\\g<name>``,
  ``\\g<0>``, ``\\n``, ``\\\\``). It is expanded once, by Python's own
  template parser, against a stand-in match whose whole text and groups are
  private-use characters NEW does not contain, and split where those appear.

  Raises:
    RemapError: NEW refers to a group OLD does not have, ends with a lone
      backslash, or holds an escape Python's `re` refuses.
  """
  groups = program.groups
  if groups > _MAX_GROUPS:
    raise RemapError(
      f"The rule's OLD part has {groups:,} groups, more than {_MAX_GROUPS:,}.",
      received=received,
      fix="Use fewer groups: (?:...) groups without capturing.",
    )
  avoid = set(new)
  candidates = (chr(c) for block in _PRIVATE_USE for c in block)
  markers = list(itertools.islice((c for c in candidates if c not in avoid), groups + 1))
  names = {index: name for name, index in program.groupindex.items()}
  stand_in = re.escape(markers[0]) + "".join(
    f"(?P<{names[i]}>{re.escape(markers[i])})"
    if names.get(i, "").isidentifier()
    else f"({re.escape(markers[i])})"
    for i in range(1, groups + 1)
  )
  try:
    expanded = re.fullmatch(stand_in, "".join(markers)).expand(new)
  except (re.error, IndexError, ValueError) as e:
    raise RemapError(
      f"The rule's NEW part is not a valid replacement for its OLD part: {e}.",
      received=received,
      fix=(
        f"OLD has {groups} groups: refer to them as \\1 .. \\{groups} or \\g<name>"
        if groups > 1
        else "OLD has 1 group: refer to it as \\1 or \\g<name>"
        if groups
        else "OLD has no groups: put ( ) around the part of OLD to reuse"
      )
      + " (\\g<0> is the whole match); write a backslash as \\\\.",
    ) from e
  index = {m: i for i, m in enumerate(markers)}
  pieces: list[str | int] = []
  text: list[str] = []
  i = 0
  while i < len(expanded):
    ch = expanded[i]
    if ch in index:
      pieces.extend(("".join(text), index[ch]))
      text = []
      # The whole match (\g<0>) reads as every marker in a row.
      i += 1 + (groups if index[ch] == 0 else 0)
    else:
      text.append(ch)
      i += 1
  pieces.append("".join(text))
  return tuple(p for p in pieces if p != "")


@dataclasses.dataclass(frozen=True)
class Rule:
  """A rename rule.

  Attributes:
    old: a regular expression (RE2 syntax) matched at the start of a key.
    new: its replacement, as in Python's `re.sub` (``\\1``, ``\\g<name>``).

  Both sides are checked and compiled when the rule is made.

  Raises:
    RemapError: OLD is not a pattern RE2 compiles, or NEW refers to a group
      OLD does not have (or ends with a lone backslash, ...).
  """

  old: str
  new: str

  def __post_init__(self):
    received = patterns.shorten(repr(f"{self.old}->{self.new}"))
    if not isinstance(self.old, str) or not isinstance(self.new, str):
      raise RemapError(
        "A rename rule's OLD and NEW parts must be strings.",
        received=received,
        fix="Pass e.g. Rule('model/a/', 'model/b/').",
      )
    program = patterns.compile_pattern(
      self.old, "The rule's OLD part", error=RemapError, received=received, fix=_OLD_FIX
    )
    object.__setattr__(self, "_program", program)
    object.__setattr__(self, "_pieces", _template(self.new, program, received))

  def __getstate__(self) -> dict:
    return {"old": self.old, "new": self.new}

  def __setstate__(self, state: dict) -> None:
    object.__setattr__(self, "old", state["old"])
    object.__setattr__(self, "new", state["new"])
    self.__post_init__()

  @classmethod
  def parse(cls, text: str) -> Rule:
    if "->" not in text:
      raise RemapError(
        "A rename rule needs the form OLD->NEW.",
        received=patterns.shorten(repr(text)),
        fix="Write e.g. --rule 'model/CustomExtractor/->model/_feature_extractor/'.",
      )
    old, new = text.split("->", 1)
    return cls(old.strip(), new.strip())

  def _expand(self, match, data: bytes) -> str:
    out = []
    for piece in self._pieces:
      if isinstance(piece, int):
        out.append(_text(match.group(piece) or b""))
      else:
        out.append(piece)
    out.append(_text(data[match.end() :]))
    return "".join(out)

  def apply(self, key: str) -> str | None:
    """`key` renamed, or None when OLD does not match at its start."""
    data = patterns.utf8(key)
    match = self._program.match(data)
    return None if match is None else self._expand(match, data)


def rename(key: str, rules: Sequence[Rule]) -> str:
  """`key` rewritten by the first rule that matches it; unchanged if none does."""
  for rule in rules:
    out = rule.apply(key)
    if out is not None:
      return out
  return key


def rename_keys(keys: Iterable[str], rules: Sequence[Rule]) -> dict[str, str]:
  """Each key's new name (see `rename`), checked for collisions.

  With many rules, every key is matched against all of them at once (one
  compiled program per chunk of rules), in time linear in the key's length.

  Args:
    keys: distinct checkpoint keys (or TF1 names).
    rules: rename rules, in order of precedence.

  Returns:
    {old key: new key} for every key.

  Raises:
    RemapError: two keys would get the same new name.
  """
  rules = list(rules)
  if len(rules) > _MANY_RULES:
    together = patterns.PatternSet(
      (r.old for r in rules), what="The rule's OLD part", error=RemapError, anchored=True
    )

    def new_name(key: str) -> str:
      first = together.first(key)
      if first is None:
        return key
      out = rules[first].apply(key)
      return rename(key, rules[first:]) if out is None else out  # None: never seen

  else:

    def new_name(key: str) -> str:
      return rename(key, rules)

  mapping: dict[str, str] = {}
  seen: dict[str, str] = {}
  for key in keys:
    new = new_name(key)
    if new in seen:
      raise RemapError(
        "Two keys would get the same new name.",
        received=f"{seen[new]!r} and {key!r} -> {new!r}",
        fix="Make the rules more specific.",
      )
    seen[new] = key
    mapping[key] = new
  return mapping


def rules_from_report(path: str) -> list[Rule]:
  """The rename map in a preflight / guard JSON report (findings' data.renames,
  or an exact data.key_map), as rules (`report_renames.read_rename_map`).

  Raises:
    RemapError: the report cannot be read, is not JSON of a report's shape,
      or proposes no rename map.
  """
  rules: list[Rule] = []
  for proposed in report_renames.read_rename_map(path, error=RemapError):
    old = re2.escape(proposed.old) + ("$" if proposed.whole_key else "")
    rules.append(Rule(old, proposed.new.replace("\\", "\\\\")))
  if not rules:
    raise RemapError(
      f"The report {path!r} proposes no rename map.",
      received=path,
      fix="Remap needs a report with a renamed_scopes / restore_scope_missing / "
      "auto_named_layers finding, or --rule.",
    )
  return rules
