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
Patterns are regular expressions in RE2's syntax, matched in linear time
(`naming.patterns`); a pattern RE2 does not support is refused when the rules
are loaded, with the RE2 form to use instead. Every pattern is compiled once,
when the rules are loaded. The linter that applies the rules is `naming.lint`.
"""

from __future__ import annotations

from collections.abc import Iterable
import dataclasses

from od_guard import _files
from od_guard import _lazy
from od_guard import _records
from od_guard import errors
from od_guard.checkpoint import inventory
from od_guard.naming import patterns

_DEFAULT_EXEMPT = (inventory.OPTIMIZER_SLOT, inventory.OPTIMIZER_STATE, inventory.BOOKKEEPING)
_TOP_LEVEL = ("extends", "rules")

# Layers Keras names automatically ('dense', 'dense_3', ...); the number changes
# with construction order, so checkpoints keyed by it break on rebuild.
_KERAS_AUTO = (
  "dense|conv1d|conv2d|conv3d|conv2d_transpose|conv3d_transpose|depthwise_conv2d|"
  "separable_conv2d|batch_normalization|layer_normalization|group_normalization|"
  "embedding|lstm|gru|simple_rnn|bidirectional|multi_head_attention"
)

# Where the linter and the pattern helpers moved: still importable from here (Orbax-style).
__getattr__ = _lazy.module_getattr(
  __name__,
  {
    "SCHEMA": "od_guard.naming.lint",
    "Violation": "od_guard.naming.lint",
    "check": "od_guard.naming.lint",
    "group_by_rule": "od_guard.naming.lint",
    "violation_lines": "od_guard.naming.lint",
    "PatternSet": "od_guard.naming.patterns",
    "compile_pattern": "od_guard.naming.patterns",
    "brief": "od_guard.naming.patterns",
    "shorten": "od_guard.naming.patterns",
    "MAX_PROGRAM_SIZE": "od_guard.naming.patterns",
    "RE2_SYNTAX": "od_guard.naming.patterns",
  },
)


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
    # The compiled patterns (cached by `compiled_patterns`) are not picklable; they
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
        received=patterns.shorten(repr(charset)),
        fix=fix + f" Escape the bracket as \\{c}.",
      )
    i += 1
  cls = f"[{charset}]"
  patterns.compile_pattern(
    cls,
    f"Rule 'charset' in {where}",
    error=RulesError,
    received=patterns.shorten(repr(charset)),
    fix=fix,
  )
  return cls


@dataclasses.dataclass(frozen=True)
class CompiledRules:
  """The patterns of a `Rules`, compiled (`compiled_patterns`)."""

  allowed: patterns.PatternSet | None
  forbidden: patterns.PatternSet | None
  charset_path: object  # every character of a path in the charset, or '/'
  charset_part: object  # one component


def compiled_patterns(rules: Rules) -> CompiledRules:
  """The rules' patterns, compiled on first use and kept with the rules."""
  cached = rules.__dict__.get("_compiled_cache")
  if cached is not None:
    return cached
  where = rules.name
  what = f"A pattern in {where}"
  compiled = CompiledRules(
    allowed=(
      patterns.PatternSet(rules.allowed, what=what, error=RulesError) if rules.allowed else None
    ),
    forbidden=(
      patterns.PatternSet(rules.forbidden, what=what, error=RulesError) if rules.forbidden else None
    ),
    charset_path=None,
    charset_part=None,
  )
  if rules.charset:
    cls = _charset_class(rules.charset, where)
    compiled = dataclasses.replace(
      compiled,
      charset_path=patterns.compile_pattern(
        f"(?:/|{cls})*", f"Rule 'charset' in {where}", error=RulesError
      ),
      charset_part=patterns.compile_pattern(
        f"{cls}+", f"Rule 'charset' in {where}", error=RulesError
      ),
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
  return f"{patterns.brief(value)} ({_type_name(value)})"


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
      received=patterns.shorten(", ".join(sorted(unknown))),
      fix=f"Rules are: {', '.join(sorted(known))}.",
    )
  changes: dict = {"name": name}
  for key, value in override.items():
    current = getattr(base, key)
    if isinstance(current, tuple):
      if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise RulesError(
          f"Rule {key!r} in {name} must be a list of strings.",
          received=patterns.brief(value),
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
  compiled_patterns(rules)
  return rules


def preset(name: str) -> Rules:
  if not isinstance(name, str) or name not in PRESETS:
    raise RulesError(
      f"Unknown naming preset {name!r}.",
      received=patterns.brief(name),
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
      received=patterns.shorten(
        ", ".join(f"{k} = {patterns.brief(data[k])}" for k in unknown[:10])
      ),
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
