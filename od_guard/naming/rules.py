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
"""

from __future__ import annotations

from collections.abc import Iterable
import dataclasses
import re

from od_guard import _records
from od_guard import errors
from od_guard.checkpoint import inventory
from od_guard.checkpoint import key_folding

SCHEMA = "od_guard.lint/1"
_DEFAULT_EXEMPT = (inventory.OPTIMIZER_SLOT, inventory.OPTIMIZER_STATE, inventory.BOOKKEEPING)

# Layers Keras names automatically ('dense', 'dense_3', ...); the number changes
# with construction order, so checkpoints keyed by it break on rebuild.
_KERAS_AUTO = (
  "dense|conv1d|conv2d|conv3d|conv2d_transpose|conv3d_transpose|depthwise_conv2d|"
  "separable_conv2d|batch_normalization|layer_normalization|group_normalization|"
  "embedding|lstm|gru|simple_rnn|bidirectional|multi_head_attention"
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


def compile_pattern(
  pattern: str,
  what: str,
  *,
  error: type[errors.OdGuardError] = RulesError,
  received: str | None = None,
  fix: str = "Fix the pattern (Python `re` syntax).",
) -> re.Pattern:
  """`pattern` compiled, or `error` saying that `what` is not a valid regular expression.

  Args:
    pattern: a Python `re` pattern.
    what: how the message names the pattern, e.g. "A pattern in rules.toml".
    error: the OdGuardError to raise.
    received: what the message says was received (default: the pattern).
    fix: the message's fix.

  Raises:
    `error`: the pattern does not compile.
  """
  try:
    return re.compile(pattern)
  except re.error as e:
    raise error(
      f"{what} is not a valid regular expression: {e}.",
      received=repr(pattern) if received is None else received,
      fix=fix,
    ) from e


def _compile(patterns: Iterable[str], where: str) -> list[re.Pattern]:
  return [compile_pattern(p, f"A pattern in {where}") for p in patterns]


def merge(base: Rules, override: dict, name: str) -> Rules:
  """Rules from `base` with a [rules] table applied (lists extend, scalars override)."""
  known = {f.name for f in dataclasses.fields(Rules)} - {"name"}
  unknown = set(override) - known
  if unknown:
    raise RulesError(
      f"Unknown rule(s) {sorted(unknown)} in {name}.",
      received=", ".join(sorted(unknown)),
      fix=f"Rules are: {', '.join(sorted(known))}.",
    )
  changes: dict = {"name": name}
  for key, value in override.items():
    current = getattr(base, key)
    if isinstance(current, tuple):
      if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise RulesError(
          f"Rule {key!r} in {name} must be a list of strings.",
          received=repr(value),
          fix=f'Write e.g. {key} = ["..."]',
        )
      changes[key] = tuple(dict.fromkeys(current + tuple(value)))
    else:
      changes[key] = value
  rules = dataclasses.replace(base, **changes)
  _compile(rules.allowed, name)
  _compile(rules.forbidden, name)
  return rules


def preset(name: str) -> Rules:
  if name not in PRESETS:
    raise RulesError(
      f"Unknown naming preset {name!r}.",
      received=repr(name),
      fix=f"Use one of: {', '.join(PRESETS)}.",
    )
  return PRESETS[name]


def load(path: str | None = None, presets: Iterable[str] = ()) -> Rules:
  """Rules from presets and/or a TOML file (whose `extends` adds presets)."""
  import tomllib

  rules = Rules(name="+".join(presets) or "custom", exempt_kinds=_DEFAULT_EXEMPT)
  names = list(presets)
  table: dict = {}
  if path:
    try:
      with open(path, "rb") as f:
        data = tomllib.load(f)
    except FileNotFoundError as e:
      raise RulesError(
        f"The rules file {path!r} does not exist.", received=path, fix="Check --rules."
      ) from e
    except tomllib.TOMLDecodeError as e:
      raise RulesError(
        f"The rules file {path!r} is not valid TOML: {e}.",
        received=path,
        fix="See the format in `od-guard lint --help` / od_guard/naming/rules.py.",
      ) from e
    names = list(dict.fromkeys([*data.get("extends", []), *names]))
    table = data.get("rules", {})
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


_TENSOR_SUFFIX = re.compile(r":\d+$")


def check(rules: Rules, variables: Iterable[inventory.Variable]) -> tuple[list[Violation], int]:
  """Checks saved values' names; returns (violations, number of values checked)."""
  allowed = _compile(rules.allowed, rules.name)
  forbidden = _compile(rules.forbidden, rules.name)
  charset = re.compile(f"^[{rules.charset}]+$") if rules.charset else None
  out: list[Violation] = []
  checked = 0
  for v in variables:
    if v.kind in rules.exempt_kinds:
      continue
    checked += 1
    # Keras 2 HDF5 names its datasets like tensors ('dense/kernel:0'); the
    # output index is not part of the name a user chose.
    path = _TENSOR_SUFFIX.sub("", v.path)
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
    if allowed and not any(p.search(path) for p in allowed):
      out.append(
        Violation(
          v.key, path, "allowed", "matches none of the allowed patterns (an unexpected scope?)"
        )
      )
    for p in forbidden:
      if p.search(path):
        out.append(Violation(v.key, path, "forbidden", f"matches forbidden pattern {p.pattern!r}"))
    if charset is not None:
      bad = [c for c in parts if c and not charset.match(c)]
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
    lines.extend("    " + line for line in key_folding.fold_keys(paths, limit=limit))
  return lines
