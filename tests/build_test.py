"""The Bazel BUILD file covers every module and every test file, and its
library targets follow the layers."""

from __future__ import annotations

import configparser
import re

import pytest

from conftest import REPO


def _targets() -> dict[str, tuple[str, dict]]:
  """Evaluates BUILD (Starlark that is also Python) with recording rules."""
  targets: dict[str, tuple[str, dict]] = {}

  def rule(kind):
    def record(**kwargs):
      targets[kwargs["name"]] = (kind, kwargs)

    return record

  def glob(patterns):
    return [str(p.relative_to(REPO)) for pat in patterns for p in REPO.glob(pat) if p.is_file()]

  scope = {
    "load": lambda *a: None,
    "package": lambda **kw: None,
    "licenses": lambda *a: None,
    "glob": glob,
    "py_library": rule("py_library"),
    "py_test": rule("py_test"),
  }
  exec(compile((REPO / "BUILD").read_text(), "BUILD", "exec"), scope)
  return targets


def test_every_module_is_in_exactly_one_library():
  srcs: list[str] = []
  for kind, kw in _targets().values():
    if kind == "py_library" and not kw.get("testonly"):
      srcs.extend(kw["srcs"])
  modules = {str(p.relative_to(REPO)) for p in (REPO / "od_guard").rglob("*.py")}
  assert modules - set(srcs) == set(), "add these to a py_library in BUILD"
  assert set(srcs) - modules == set(), "BUILD names files that do not exist"
  assert len(srcs) == len(set(srcs)), "a module is in two libraries"


def test_every_test_module_has_a_py_test():
  tests = {kw["srcs"][0]: kw for kind, kw in _targets().values() if kind == "py_test"}
  files = {str(p.relative_to(REPO)) for p in (REPO / "tests").glob("*_test.py")}
  assert files == set(tests), "each tests/*_test.py needs its own py_test"
  for src, kw in tests.items():
    assert kw["name"] == re.sub(r"^tests/|\.py$", "", src)


def test_library_deps_follow_the_import_linter_layers():
  """A library depends only on libraries of lower layers (.importlinter)."""
  parser = configparser.ConfigParser()
  parser.read(REPO / ".importlinter")
  layers = [
    {m.strip().removeprefix("od_guard.") for m in line.split("|")}
    for line in parser["importlinter:contract:layers"]["layers"].strip().splitlines()
  ]
  rank = {name: i for i, layer in enumerate(layers) for name in layer}
  libraries = {n: kw for n, (kind, kw) in _targets().items() if kind == "py_library"}
  for name, kw in libraries.items():
    if name not in rank:
      continue
    for dep in kw.get("deps", []):
      dep = dep.lstrip(":")
      assert rank[dep] > rank[name], f"{name} (layer {rank[name]}) depends on {dep}"


if __name__ == "__main__":
  import sys

  sys.exit(pytest.main([__file__, "-q"]))
