"""Regular expressions for naming rules and rename rules, matched in linear time.

Patterns are regular expressions in RE2's syntax (the `google-re2` package),
matched in time linear in the path's length whatever the pattern: no pattern
can hang a save, a lint or a remap. RE2 accepts Python's `re` syntax except
backreferences, lookaround, atomic groups, possessive quantifiers and
conditionals; `compile_pattern` refuses a pattern using one with the RE2 form
to use instead. `PatternSet` compiles many patterns once and matches them all
at once (one combined program per chunk of patterns), in bounded memory.

Also the message helpers the naming modules share (`brief`, `shorten`).
"""

from __future__ import annotations

from collections.abc import Iterable
import dataclasses
import re
import reprlib

import re2

from od_guard import errors

# How patterns are compiled and matched. Patterns are matched in chunks, each
# chunk one combined program of at most `_CHUNK_COST` instructions (RE2 also
# bounds each program's memory, `max_mem`, DFA cache included); a rule set
# whose programs together exceed `MAX_PROGRAM_SIZE` instructions (about 16
# bytes each) is refused before it is compiled: no real rule set comes near.
_CHUNK_PATTERNS = 16384
_CHUNK_COST = 1 << 16
_CHUNK_MAX_MEM = 16 << 20
MAX_PROGRAM_SIZE = 4_000_000
_PLAIN = frozenset("{[.\\")  # a pattern without these costs about its length
_SMALL_CHUNK = 64  # chunks this small identify their matching patterns one by one
RE2_SYNTAX = "https://github.com/google/re2/wiki/Syntax"


def _options(*, never_capture: bool = False, max_mem: int | None = None) -> re2.Options:
  options = re2.Options()
  options.log_errors = False  # RE2 would print every refused pattern to stderr
  options.never_capture = never_capture
  if max_mem is not None:
    options.max_mem = max_mem
  return options


_OPTIONS = _options()
_COMBINED = _options(never_capture=True, max_mem=_CHUNK_MAX_MEM)


# What RE2 refuses that Python's `re` accepts: (a piece of RE2's message or of
# the pattern, the feature, the RE2 way to write it).
_UNSUPPORTED = (
  ("(?=", "lookahead (?=...)", "match the text itself; RE2 has no lookaround"),
  ("(?!", "negative lookahead (?!...)", "list what must not appear in `forbidden` instead"),
  ("(?<=", "lookbehind (?<=...)", "include the preceding text in the pattern"),
  ("(?<!", "negative lookbehind (?<!...)", "list what must not appear in `forbidden` instead"),
  ("(?P=", "a named backreference (?P=name)", "write the repeated text out"),
  ("(?>", "an atomic group (?>...)", "write a plain group (...): RE2 never backtracks"),
  ("(?(", "a conditional (?(id)yes|no)", "write two patterns, one per case"),
  ("(?#", "a comment (?#...)", "remove the comment"),
  ("(?x", "the verbose flag (?x)", "remove the flag, the spaces and the comments"),
  ("(?a", "the ASCII flag (?a)", "remove it: RE2's \\w, \\d, \\s and \\b are ASCII already"),
  ("(?u", "the Unicode flag (?u)", "write \\pL, \\pN or [[:^space:]] for Unicode classes"),
  ("(?L", "the locale flag (?L)", "remove it"),
  ("repetition operator: *+", "a possessive quantifier *+", "write * (RE2 never backtracks)"),
  ("repetition operator: ++", "a possessive quantifier ++", "write + (RE2 never backtracks)"),
  ("repetition operator: ?+", "a possessive quantifier ?+", "write ? (RE2 never backtracks)"),
  ("repetition operator: }+", "a possessive quantifier {m,n}+", "drop the + after }"),
  ("invalid repetition size", "a repetition count over 1000", "repeat at most {1000} times"),
  ("escape sequence: \\Z", "\\Z", "write \\z (or $) for the end of the text"),
  ("escape sequence: \\G", "\\G", "anchor with ^ instead"),
  ("escape sequence: \\N", "\\N{name}", "write the character itself, or \\x{hex}"),
  ("escape sequence: \\U", "\\Uhhhhhhhh", "write \\x{hhhhhhhh}"),
  ("escape sequence: \\u", "\\uhhhh", "write \\x{hhhh}"),
)
_BACKREFERENCE = re.compile(r"invalid escape sequence: \\[1-9]")


_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 160
_REPR.maxlist = _REPR.maxtuple = _REPR.maxset = 8
_REPR.maxdict = 6
_REPR.maxlevel = 3


def brief(value) -> str:
  """`repr(value)`, at most a few hundred characters, however large `value` is."""
  try:
    return _REPR.repr(value)
  except ValueError:  # an integer of more digits than Python prints
    return f"<an integer of {value.bit_length():,} bits>"


def shorten(text: str, limit: int = 200) -> str:
  return (
    text if len(text) <= limit else f"{text[: limit - 40]}...{text[-20:]} ({len(text):,} chars)"
  )


def _refusal(pattern: str, message: str) -> tuple[str, str]:
  """(what RE2 does not support, how to write it) for RE2's `message`."""
  if _BACKREFERENCE.search(message):
    return "a backreference (\\1 ...)", "write the repeated text out"
  for clue, feature, advice in _UNSUPPORTED:
    if clue in message or (clue == "(?P=" and clue in pattern and "(?P" in message):
      return feature, advice
  return message, f"rewrite it in RE2's syntax ({RE2_SYNTAX})"


def compile_pattern(
  pattern: str,
  what: str,
  *,
  error: type[errors.OdGuardError],
  received: str | None = None,
  fix: str = "Fix the pattern (Python `re` syntax).",
) -> re2._Regexp:
  """`pattern` compiled by RE2, or `error` saying why it cannot be.

  A pattern Python's `re` refuses too is "not a valid regular expression"
  (with Python's message, and `fix`); one that only RE2 refuses uses a feature
  RE2 does not have, and the message names it and the RE2 way to write it.

  Args:
    pattern: a regular expression (RE2 syntax: Python's, less backreferences,
      lookaround, atomic groups, possessive quantifiers, conditionals).
    what: how the message names the pattern, e.g. "A pattern in rules.toml".
    error: the OdGuardError to raise.
    received: what the message says was received (default: the pattern).
    fix: the message's fix for a pattern that is not a regular expression.

  Returns:
    The compiled pattern (`re2`; match it with bytes or str).

  Raises:
    `error`: the pattern does not compile.
  """
  try:
    return re2.compile(pattern, _OPTIONS)
  except re2.error as e:
    message = e.args[0].decode("utf-8", "replace") if e.args else "invalid"
    cause: Exception = e
  except UnicodeEncodeError as e:  # a lone surrogate (JSON "\ud800")
    message = "it holds a lone surrogate code point, which is not text"
    cause = e
  received = shorten(repr(pattern)) if received is None else received
  try:
    re.compile(pattern)
  except re.error as python_error:
    raise error(
      f"{what} is not a valid regular expression: {python_error}.", received=received, fix=fix
    ) from python_error
  except (RecursionError, OverflowError, ValueError):
    pass
  feature, advice = _refusal(pattern, message)
  raise error(
    f"{what} uses {feature}, which RE2 (the linear-time engine od_guard matches with) "
    "does not support.",
    received=received,
    fix=f"Rewrite the pattern: {advice} (RE2 syntax: {RE2_SYNTAX}).",
  ) from cause


def utf8(text: str) -> bytes:
  """`text` as the UTF-8 bytes RE2 matches (a lone surrogate kept, not refused)."""
  return text.encode("utf-8", "surrogatepass")


@dataclasses.dataclass
class _Chunk:
  """Patterns [start, stop) of a `PatternSet`, compiled as one program."""

  start: int
  stop: int
  program: object  # re2 regexp: the patterns as one alternation, or the one pattern
  singles: list | None = None  # each pattern compiled, on first need
  set: object = None  # an re2.Set of the patterns, on first need (large chunks)


class PatternSet:
  """Regular expressions compiled once and matched together, in linear time.

  Args:
    patterns: RE2 patterns (see `compile_pattern`).
    what: how error messages name a pattern, e.g. "A pattern in rules.toml".
    error: the OdGuardError raised for a bad pattern.
    anchored: match at the start of the text (`re.match`), not anywhere
      (`re.search`).

  Raises:
    `error`: a pattern does not compile, or the patterns together need more
      than `MAX_PROGRAM_SIZE` instructions.
  """

  def __init__(
    self,
    patterns: Iterable[str],
    *,
    what: str,
    error: type[errors.OdGuardError],
    anchored: bool = False,
  ):
    self.patterns = tuple(patterns)
    self._what = what
    self._error = error
    self._anchored = anchored
    self._chunks: list[_Chunk] = []
    self._size = 0
    total = 0
    start = 0
    n = len(self.patterns)
    while start < n:
      stop, cost = start, 0
      while stop < n and stop - start < _CHUNK_PATTERNS and (cost < _CHUNK_COST or stop == start):
        c = self._cost(self.patterns[stop])
        cost += c
        total += c
        stop += 1
        if total > MAX_PROGRAM_SIZE:
          raise self._too_large()
      self._validate(start, stop)
      self._add(start, stop)
      start = stop

  def _cost(self, pattern: str) -> int:
    """About how many instructions `pattern` compiles to: its length for plain
    text and operators; else what RE2 compiles it to (a repetition, a class
    or an escape can cost a thousand times its length)."""
    if _PLAIN.isdisjoint(pattern):
      return len(pattern) + 2
    return compile_pattern(pattern, self._what, error=self._error).programsize

  def _too_large(self) -> errors.OdGuardError:
    return self._error(
      f"{self._what.replace('A pattern', 'The patterns', 1)} are too large to match in "
      f"bounded memory: their compiled programs exceed {MAX_PROGRAM_SIZE:,} instructions.",
      received=f"{len(self.patterns):,} patterns",
      fix="Use fewer, more general patterns (one pattern can cover many scopes: "
      "'^model/(a|b|c)/').",
    )

  def _new_set(self):
    if self._anchored:
      return re2.Set.MatchSet(_options(max_mem=_CHUNK_MAX_MEM))
    return re2.Set.SearchSet(_options(max_mem=_CHUNK_MAX_MEM))

  def _validate(self, start: int, stop: int) -> None:
    """Parses each pattern on its own (cheaply, by adding it to a set); a
    pattern RE2 refuses is compiled alone for the message."""
    parsed = self._new_set()
    for i in range(start, stop):
      try:
        parsed.Add(self.patterns[i])
      except (re2.error, UnicodeEncodeError):
        compile_pattern(self.patterns[i], self._what, error=self._error)
        raise self._error(  # RE2's set refused what RE2 compiles: never seen
          f"{self._what} cannot be matched by RE2.", received=shorten(repr(self.patterns[i]))
        ) from None

  def _add(self, start: int, stop: int) -> None:
    if stop - start == 1:
      program = compile_pattern(self.patterns[start], self._what, error=self._error)
    else:
      try:
        program = re2.compile("|".join(f"(?:{p})" for p in self.patterns[start:stop]), _COMBINED)
      except re2.error:  # too large together (or a \Q without \E): halves
        middle = (start + stop) // 2
        self._add(start, middle)
        self._add(middle, stop)
        return
    self._size += program.programsize
    if self._size > MAX_PROGRAM_SIZE:
      raise self._too_large()
    self._chunks.append(_Chunk(start, stop, program))

  def __len__(self) -> int:
    return len(self.patterns)

  def _hit(self, program, data: bytes) -> bool:
    return (program.match(data) if self._anchored else program.search(data)) is not None

  def _members(self, chunk: _Chunk, data: bytes) -> list[int]:
    """The indices of the patterns of `chunk` that match `data` (which the
    chunk's combined program matched)."""
    if chunk.stop - chunk.start > _SMALL_CHUNK and chunk.singles is None:
      if chunk.set is None:
        chunk.set = self._new_set()
        for p in self.patterns[chunk.start : chunk.stop]:
          chunk.set.Add(p)
        try:
          chunk.set.Compile()
        except re2.error:
          chunk.set = False
      if chunk.set:
        # An empty answer from a set can mean its DFA ran out of memory:
        # then ask each pattern, below.
        found = chunk.set.Match(data)
        if found:
          return sorted(chunk.start + i for i in found)
    if chunk.singles is None:
      chunk.singles = [
        compile_pattern(p, self._what, error=self._error)
        for p in self.patterns[chunk.start : chunk.stop]
      ]
    return [chunk.start + i for i, p in enumerate(chunk.singles) if self._hit(p, data)]

  def any(self, text: str | bytes) -> bool:
    """Whether some pattern matches `text` (str, or its UTF-8 bytes)."""
    data = utf8(text) if isinstance(text, str) else text
    return any(self._hit(chunk.program, data) for chunk in self._chunks)

  def matching(self, text: str | bytes) -> list[int]:
    """The indices of every pattern that matches `text`, in order."""
    data = utf8(text) if isinstance(text, str) else text
    out: list[int] = []
    for chunk in self._chunks:
      if self._hit(chunk.program, data):
        out.extend(self._members(chunk, data))
    return out

  def first(self, text: str) -> int | None:
    """The index of the first pattern that matches `text`, or None."""
    data = utf8(text)
    for chunk in self._chunks:
      if self._hit(chunk.program, data):
        members = self._members(chunk, data)
        if members:
          return members[0]
    return None
