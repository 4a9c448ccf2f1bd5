"""The Bazel BUILD file covers every module and every test file."""

from __future__ import annotations

import ast
import re

import pytest

from conftest import REPO


def _build_calls():
  tree = ast.parse((REPO / "BUILD").read_text())
  for node in tree.body:
    if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
      call = node.value
      kwargs = {
        k.arg: ast.literal_eval(k.value) for k in call.keywords if not isinstance(k.value, ast.Call)
      }
      yield call.func.id, kwargs


def test_every_module_is_in_the_library():
  srcs = set()
  for rule, kw in _build_calls():
    if rule == "py_library" and kw["name"] == "od_guard":
      srcs.update(kw.get("srcs", []))
  modules = {str(p.relative_to(REPO)) for p in (REPO / "od_guard").rglob("*.py")}
  assert modules - srcs == set(), "add these to a py_library in BUILD"
  assert srcs - modules == set(), "BUILD names files that do not exist"


def test_every_test_module_has_a_py_test():
  tests = {}
  for rule, kw in _build_calls():
    if rule == "py_test":
      for s in kw["srcs"]:
        tests[s] = kw
  files = {str(p.relative_to(REPO)) for p in (REPO / "tests").glob("*_test.py")}
  assert files == set(tests), "each tests/*_test.py needs its own py_test"
  for src, kw in tests.items():
    assert kw["name"] == re.sub(r"^tests/|\.py$", "", src)


if __name__ == "__main__":
  import sys

  sys.exit(pytest.main([__file__, "-q"]))
