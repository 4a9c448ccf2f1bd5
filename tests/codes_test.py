"""The finding-code registry: every code od_guard raises is registered, once,
with the module that raises it."""

from __future__ import annotations

import ast
import importlib.util
import pathlib
import re

import pytest

from od_guard.restore import codes
from od_guard.restore import decide
from od_guard.restore import findings
from od_guard.restore import policy as policy_lib

pytestmark = pytest.mark.plain

PACKAGE = pathlib.Path(codes.__file__).resolve().parents[2]  # od_guard/


# Finding(...) and the helpers that take the code as their first argument.
_BUILDERS = frozenset({"Finding", "_architecture_error"})
_IDENTIFIER = re.compile(r"[a-z][a-z0-9]*(_[a-z0-9]+)+")


def _constants(node: ast.AST) -> list[str]:
  """The string constants an expression can evaluate to (ternaries included)."""
  if isinstance(node, ast.Constant) and isinstance(node.value, str):
    return [node.value]
  if isinstance(node, ast.IfExp):
    return _constants(node.body) + _constants(node.orelse)
  return []


def _codes_in_source() -> dict[str, set[str]]:
  """Codes written in od_guard's sources: the first argument of every
  `Finding(...)` call and of the helpers that build one from a code (a
  literal, a ternary of literals, or a module constant), and every
  identifier-like literal assigned to a variable named `code`."""
  out: dict[str, set[str]] = {}
  for path in sorted(PACKAGE.rglob("*.py")):
    tree = ast.parse(path.read_text())
    constants = {
      t.id: n.value
      for n in tree.body
      if isinstance(n, ast.Assign)
      for t in n.targets
      if isinstance(t, ast.Name)
    }
    for node in ast.walk(tree):
      found: list[str] = []
      if (
        isinstance(node, ast.Call)
        and getattr(node.func, "attr", getattr(node.func, "id", "")) in _BUILDERS
      ):
        first = (
          node.args[0]
          if node.args
          else next((k.value for k in node.keywords if k.arg == "code"), None)
        )
        if isinstance(first, ast.Name) and first.id in constants:
          first = constants[first.id]
        if first is not None:
          found = _constants(first)
      elif isinstance(node, ast.Assign):
        for target in node.targets:
          if isinstance(target, ast.Name) and target.id == "code":
            found += _constants(node.value)
          elif isinstance(target, ast.Tuple) and isinstance(node.value, ast.Tuple):
            for t, v in zip(target.elts, node.value.elts):
              if isinstance(t, ast.Name) and t.id == "code":
                found += _constants(v)
      for code in filter(_IDENTIFIER.fullmatch, found):
        out.setdefault(code, set()).add(str(path.relative_to(PACKAGE.parent)))
  return out


def test_every_code_in_the_sources_is_registered():
  written = _codes_in_source()
  assert len(written) >= 50  # the scan itself works
  assert sorted(set(written) - set(codes.CODES)) == []


def test_every_registered_code_is_raised_somewhere():
  assert sorted(set(codes.CODES) - set(_codes_in_source())) == []


@pytest.mark.parametrize("code", sorted(codes.CODES))
def test_a_code_is_raised_by_the_module_it_names(code):
  entry = codes.CODES[code]
  spec = importlib.util.find_spec(entry.layer)
  assert spec is not None and spec.origin
  assert f'"{code}"' in pathlib.Path(spec.origin).read_text()


@pytest.mark.parametrize("code", sorted(codes.CODES))
def test_a_code_has_a_meaning_and_a_severity(code):
  entry = codes.CODES[code]
  assert entry.code == code
  assert entry.severity in (codes.ERROR, codes.WARNING, codes.INFO, codes.VARIES)
  assert entry.meaning.endswith(".") and "\n" not in entry.meaning
  assert entry.fix or entry.severity == codes.INFO or code in ("nan_inf_in_unrestored_values",)


def test_the_decide_tables_and_presets_name_registered_codes():
  named = set(decide.EXPLAINED_BY) | decide.NO_MODEL_TIER | decide.FINAL_STATIC
  named |= decide.ARCHITECTURE_GUESSES | decide.INDEX_ONLY
  named |= {c for causes in decide.EXPLAINED_BY.values() for c in causes}
  named |= {c for shown in decide.SHOWN_WHEN_QUIET.values() for c in shown}
  for preset in policy_lib.PRESETS.values():
    named |= preset.warn_only
  assert sorted(named - set(codes.CODES)) == []


def test_an_unregistered_code_is_refused_with_the_closest_one(monkeypatch):
  monkeypatch.setenv("OD_GUARD_STRICT_CODES", "1")
  with pytest.raises(codes.UnregisteredCodeError) as e:
    findings.Finding("shape_mismatchh", findings.ERROR, "x")
  assert str(e.value) == (
    "Finding code 'shape_mismatchh' is not registered in od_guard.restore.codes. "
    "Did you mean 'shape_mismatch'?"
  )


def test_without_the_strict_switch_any_code_is_accepted(monkeypatch):
  monkeypatch.delenv("OD_GUARD_STRICT_CODES")
  assert findings.Finding("made_up", findings.INFO, "x").code == "made_up"


def test_closest_names_a_near_miss():
  assert codes.closest("checkpoint_type_missmatch") == "checkpoint_type_mismatch"
  assert codes.closest("zzzz") is None
