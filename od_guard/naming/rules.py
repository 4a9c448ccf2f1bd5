"""Naming conventions for saved variables: rules, presets, and the linter.

Rules are declarative, in TOML (read with the standard library's `tomllib`):

    # rules.toml
    extends = ["odapi"]          # presets to start from: odapi, keras
    [rules]
    required_roots = ["model"]   # a model value's path must start with one of these
    allowed = ["^model/_feature_extractor/", "^model/_box_predictor/"]  # regexes, any
    forbidden = ["(^|/)CustomExtractor(/|$)"]                            # regexes, none
    charset = "A-Za-z0-9_.-"     # characters allowed in each path component
    max_depth = 16               # path components at most
    exempt_kinds = ["optimizer_slot", "optimizer_state", "bookkeeping"]

Lists extend the presets' (allowed, forbidden, required_roots, exempt_kinds);
scalars override them. Paths are the decoded object paths of `od-guard inspect`
(TF2 keys without `/.ATTRIBUTES/...`, TF1 names, Keras file dataset paths).

The file is read with `od_guard._files` (a regular file of at most
`_files.RULES_LIMIT` bytes, UTF-8 TOML) and checked against the schema above:
a key od_guard does not know, or a value of the wrong type, is a `RulesError`
naming the key, the value and the type expected.

Patterns are regular expressions in RE2's syntax (the `google-re2` package),
matched in time linear in the path's length whatever the pattern: no pattern
can hang a save or a lint. RE2 accepts Python's `re` syntax except
backreferences, lookaround, atomic groups, possessive quantifiers and
conditionals; a pattern using one is refused when the rules are loaded, with
the RE2 form to use instead. Every pattern is compiled once, when the rules are
loaded; the linter then matches all of them at once (one combined program per
chunk of patterns).
"""

from __future__ import annotations

from collections.abc import Iterable
import dataclasses
import re
import reprlib

import re2

from od_guard import _files
from od_guard import _records
from od_guard import errors
from od_guard.checkpoint import inventory
from od_guard.checkpoint import key_folding
from od_guard.checkpoint import limits

SCHEMA = "od_guard.lint/1"
_DEFAULT_EXEMPT = (inventory.OPTIMIZER_SLOT, inventory.OPTIMIZER_STATE, inventory.BOOKKEEPING)
_TOP_LEVEL = ("extends", "rules")

# Layers Keras names automatically ('dense', 'dense_3', ...); the number changes
# with construction order, so checkpoints keyed by it break on rebuild.
_KERAS_AUTO = (
  "dense|conv1d|conv2d|conv3d|conv2d_transpose|conv3d_transpose|depthwise_conv2d|"
  "separable_conv2d|batch_normalization|layer_normalization|group_normalization|"
  "embedding|lstm|gru|simple_rnn|bidirectional|multi_head_attention"
)

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


class RulesError(errors.OdGuardError):
  """A rules file or preset name is invalid."""


@dataclasses.dataclass(frozen=True)
class Rules(_records.Record):
  """A set of naming rules (see the module docstring for the TOML form)."""

  name: str = "custom"
  required_roots: tuple[str, ...] = ()
  allowed: tuple[str, ...] = ()
  forbidden: tuple[str, ...] = ()
  charset: str = ""
  max_depth: int | None = None
  exempt_kinds: tuple[str, ...] = _DEFAULT_EXEMPT

  def __getstate__(self) -> dict:
    # The compiled patterns (cached by `_compiled`) are not picklable; they
    # are compiled again on first use.
    return {k: v for k, v in self.__dict__.items() if k != "_compiled_cache"}


PRESETS: dict[str, Rules] = {
  # The object paths the OD API's restore maps bind (TF2, per meta-architecture:
  # SSD, Faster R-CNN, CenterNet; classification checkpoints), and the TF1 scopes.
  "odapi": Rules(
    name="odapi",
    allowed=(
      r"^model/_feature_extractor(/|$)",
      r"^model/_box_predictor(/|$)",
      r"^model/_feature_extractor_for_proposal_features(/|$)",
      r"^model/_feature_extractor_for_box_classifier_features(/|$)",
      r"^model/_first_stage_box_predictor(_first_conv)?(/|$)",
      r"^model/_mask_rcnn_box_predictor(/|$)",
      r"^model/_prediction_head_dict(/|$)",
      r"^feature_extractor(/|$)",
      r"^(FeatureExtractor|BoxPredictor(_\d+)?|WeightSharedConvolutionalBoxPredictor(_\d+)?)(/|$)",
      r"^(FirstStageFeatureExtractor|SecondStageFeatureExtractor|FirstStageBoxPredictor|"
      r"SecondStageBoxPredictor|Conv)(/|$)",
    ),
    charset=r"A-Za-z0-9_.\-",
    max_depth=24,
  ),
  "keras": Rules(
    name="keras",
    forbidden=(rf"(^|/)({_KERAS_AUTO})_\d+(/|$)",),
    charset=r"A-Za-z0-9_.\-",
    max_depth=24,
  ),
}


# --- patterns ---------------------------------------------------------------------

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
  error: type[errors.OdGuardError] = RulesError,
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


def _utf8(text: str) -> bytes:
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
    error: type[errors.OdGuardError] = RulesError,
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
    data = _utf8(text) if isinstance(text, str) else text
    return any(self._hit(chunk.program, data) for chunk in self._chunks)

  def matching(self, text: str | bytes) -> list[int]:
    """The indices of every pattern that matches `text`, in order."""
    data = _utf8(text) if isinstance(text, str) else text
    out: list[int] = []
    for chunk in self._chunks:
      if self._hit(chunk.program, data):
        out.extend(self._members(chunk, data))
    return out

  def first(self, text: str) -> int | None:
    """The index of the first pattern that matches `text`, or None."""
    data = _utf8(text)
    for chunk in self._chunks:
      if self._hit(chunk.program, data):
        members = self._members(chunk, data)
        if members:
          return members[0]
    return None


def _charset_class(charset: str, where: str) -> str:
  """`charset` as one RE2 character class ``[...]``, checked.

  Raises:
    RulesError: it is not the inside of one character class (an unescaped
      ``]`` or ``[``, a trailing backslash, a bad range).
  """
  fix = r'Write the characters allowed, as inside [...]: e.g. charset = "A-Za-z0-9_.\\-".'
  i = 0
  while i < len(charset):
    c = charset[i]
    if c == "\\":
      i += 2
      continue
    if c == "[" and charset.startswith("[:", i) and charset.find(":]", i + 2) > 0:
      i = charset.find(":]", i + 2) + 2
      continue
    if c in "[]":
      raise RulesError(
        f"Rule 'charset' in {where} must be the inside of one character class; "
        f"its unescaped {c!r} at position {i} would end or nest it.",
        received=shorten(repr(charset)),
        fix=fix + f" Escape the bracket as \\{c}.",
      )
    i += 1
  cls = f"[{charset}]"
  compile_pattern(cls, f"Rule 'charset' in {where}", received=shorten(repr(charset)), fix=fix)
  return cls


@dataclasses.dataclass(frozen=True)
class _Compiled:
  allowed: PatternSet | None
  forbidden: PatternSet | None
  charset_path: object  # every character of a path in the charset, or '/'
  charset_part: object  # one component


def _compiled(rules: Rules) -> _Compiled:
  """The rules' patterns, compiled on first use and kept with the rules."""
  cached = rules.__dict__.get("_compiled_cache")
  if cached is not None:
    return cached
  where = rules.name
  compiled = _Compiled(
    allowed=PatternSet(rules.allowed, what=f"A pattern in {where}") if rules.allowed else None,
    forbidden=(
      PatternSet(rules.forbidden, what=f"A pattern in {where}") if rules.forbidden else None
    ),
    charset_path=None,
    charset_part=None,
  )
  if rules.charset:
    cls = _charset_class(rules.charset, where)
    compiled = dataclasses.replace(
      compiled,
      charset_path=compile_pattern(f"(?:/|{cls})*", f"Rule 'charset' in {where}"),
      charset_part=compile_pattern(f"{cls}+", f"Rule 'charset' in {where}"),
    )
  object.__setattr__(rules, "_compiled_cache", compiled)
  return compiled


# --- the schema --------------------------------------------------------------------


def _type_name(value) -> str:
  if isinstance(value, bool):
    return "a boolean"
  if isinstance(value, int):
    return "an integer"
  if isinstance(value, float):
    return "a float"
  if isinstance(value, str):
    return "a string"
  if isinstance(value, (list, tuple)):
    return "an array"
  if isinstance(value, dict):
    return "a table"
  return f"a {type(value).__name__}"


def _received(value) -> str:
  return f"{brief(value)} ({_type_name(value)})"


def merge(base: Rules, override: dict, name: str) -> Rules:
  """Rules from `base` with a [rules] table applied (lists extend, scalars
  override); every pattern is compiled (once: the result keeps them).

  Raises:
    RulesError: an unknown rule, a value of the wrong type, a bad pattern.
  """
  known = {f.name for f in dataclasses.fields(Rules)} - {"name"}
  unknown = set(override) - known
  if unknown:
    raise RulesError(
      f"Unknown rule(s) {sorted(unknown)} in {name}.",
      received=shorten(", ".join(sorted(unknown))),
      fix=f"Rules are: {', '.join(sorted(known))}.",
    )
  changes: dict = {"name": name}
  for key, value in override.items():
    current = getattr(base, key)
    if isinstance(current, tuple):
      if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise RulesError(
          f"Rule {key!r} in {name} must be a list of strings.",
          received=brief(value),
          fix=f'Write e.g. {key} = ["..."]',
        )
      changes[key] = tuple(dict.fromkeys(current + tuple(value)))
    elif key == "max_depth":
      if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise RulesError(
          f"Rule 'max_depth' in {name} must be a whole number >= 0 (path components at most).",
          received=_received(value),
          fix="Write e.g. max_depth = 16 (a number, no quotes).",
        )
      changes[key] = value
    else:  # charset
      if not isinstance(value, str):
        raise RulesError(
          f"Rule 'charset' in {name} must be a string (the characters allowed, as inside [...]).",
          received=_received(value),
          fix=r'Write e.g. charset = "A-Za-z0-9_.\\-".',
        )
      changes[key] = value
  rules = dataclasses.replace(base, **changes)
  _compiled(rules)
  return rules


def preset(name: str) -> Rules:
  if not isinstance(name, str) or name not in PRESETS:
    raise RulesError(
      f"Unknown naming preset {name!r}.",
      received=brief(name),
      fix=f"Use one of: {', '.join(PRESETS)}.",
    )
  return PRESETS[name]


def _read(path: str, flag: str) -> tuple[list[str], dict]:
  """The `extends` and [rules] of a rules file, checked against the schema."""
  data = _files.read_toml(
    path,
    what="rules file",
    flag=flag,
    limit=_files.RULES_LIMIT,
    error=RulesError,
    fix="See the format in `od-guard lint --help` / od_guard/naming/rules.py.",
  )
  unknown = sorted(set(data) - set(_TOP_LEVEL))
  if unknown:
    raise RulesError(
      f"Unknown key(s) {unknown} in the rules file {path!r}.",
      received=shorten(", ".join(f"{k} = {brief(data[k])}" for k in unknown[:10])),
      fix="A rules file holds `extends = [presets]` and a [rules] table; rules go under [rules].",
    )
  extends = data.get("extends", [])
  if isinstance(extends, str):
    extends = [extends]
  if not isinstance(extends, list) or not all(isinstance(e, str) for e in extends):
    raise RulesError(
      f"'extends' in the rules file {path!r} must be a preset name or a list of them.",
      received=_received(extends),
      fix=f'Write e.g. extends = ["odapi"] (presets: {", ".join(PRESETS)}).',
    )
  table = data.get("rules", {})
  if not isinstance(table, dict):
    raise RulesError(
      f"'rules' in the rules file {path!r} must be a table.",
      received=_received(table),
      fix='Write the rules under a [rules] header, e.g. [rules]\\nallowed = ["^model/"].',
    )
  return extends, table


def load(path: str | None = None, presets: Iterable[str] = (), *, flag: str = "--rules") -> Rules:
  """Rules from presets and/or a TOML file (whose `extends` adds presets).

  `flag` is how messages name the argument that gave `path`.

  Raises:
    RulesError: the file cannot be read (missing, not a regular file, over
      `_files.RULES_LIMIT`, not UTF-8, not TOML), breaks the schema, names an
      unknown preset, or holds a pattern RE2 cannot compile.
  """
  presets = list(presets)
  rules = Rules(name="+".join(presets) or "custom", exempt_kinds=_DEFAULT_EXEMPT)
  names = presets
  table: dict = {}
  if path:
    extends, table = _read(path, flag)
    names = list(dict.fromkeys([*extends, *presets]))
  for n in names:
    p = preset(n)
    rules = merge(
      rules,
      {k: v for k, v in p.to_dict().items() if k != "name" and v not in ((), None, "")},
      "+".join(names),
    )
  if path:
    rules = merge(rules, table, path)
  return rules


@dataclasses.dataclass(frozen=True)
class Violation(_records.Record):
  key: str
  path: str
  rule: str
  message: str


def _without_tensor_suffix(path: str) -> str:
  """`path` without a Keras 2 HDF5 output index (``dense/kernel:0``)."""
  head, colon, tail = path.rpartition(":")
  return head if colon and tail.isascii() and tail.isdigit() else path


def check(rules: Rules, variables: Iterable[inventory.Variable]) -> tuple[list[Violation], int]:
  """Checks saved values' names; returns (violations, number of values checked).

  Every pattern is matched in time linear in the path's length.

  Raises:
    RulesError: a pattern of `rules` does not compile (rules built in code;
      `load` and `merge` check theirs).
  """
  compiled = _compiled(rules)
  allowed, forbidden = compiled.allowed, compiled.forbidden
  charset_path, charset_part = compiled.charset_path, compiled.charset_part
  out: list[Violation] = []
  checked = 0
  for v in variables:
    if v.kind in rules.exempt_kinds:
      continue
    checked += 1
    # Keras 2 HDF5 names its datasets like tensors ('dense/kernel:0'); the
    # output index is not part of the name a user chose.
    path = _without_tensor_suffix(v.path)
    data = _utf8(path)
    parts = path.split("/")
    if rules.required_roots and parts[0] not in rules.required_roots:
      out.append(
        Violation(
          v.key,
          path,
          "required_roots",
          f"root {parts[0]!r} is not one of {list(rules.required_roots)}",
        )
      )
    if allowed is not None and not allowed.any(data):
      out.append(
        Violation(
          v.key, path, "allowed", "matches none of the allowed patterns (an unexpected scope?)"
        )
      )
    if forbidden is not None:
      for i in forbidden.matching(data):
        out.append(
          Violation(v.key, path, "forbidden", f"matches forbidden pattern {rules.forbidden[i]!r}")
        )
    if charset_path is not None and charset_path.fullmatch(data) is None:
      bad = [c for c in parts if c and charset_part.fullmatch(_utf8(c)) is None]
      if bad:
        out.append(
          Violation(
            v.key, path, "charset", f"component {bad[0]!r} has characters outside [{rules.charset}]"
          )
        )
    if rules.max_depth is not None and len(parts) > rules.max_depth:
      out.append(
        Violation(v.key, path, "max_depth", f"{len(parts)} components, more than {rules.max_depth}")
      )
  return out, checked


def group_by_rule(violations: Iterable[Violation]) -> dict[str, list[str]]:
  """The violations' paths under each broken rule, as ``'rule: message'``, in
  order of first appearance."""
  out: dict[str, list[str]] = {}
  for v in violations:
    out.setdefault(f"{v.rule}: {v.message}", []).append(v.path)
  return out


def violation_lines(violations: Iterable[Violation], *, limit: int) -> list[str]:
  """The violations as text lines: each broken rule, then its paths folded by
  prefix (at most `limit` lines per rule).

  Args:
    violations: what `check` found.
    limit: most folded path lines listed under one rule.

  Returns:
    ``"  [rule: message]"`` lines, each followed by its ``"    path"`` lines;
    no line when there is no violation.
  """
  lines: list[str] = []
  for rule, paths in group_by_rule(violations).items():
    lines.append(f"  [{rule}]")
    # Keys come from the file: control characters are escaped for the terminal.
    lines.extend(
      "    " + limits.printable(line) for line in key_folding.fold_keys(paths, limit=limit)
    )
  return lines
