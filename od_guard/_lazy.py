"""Attributes that import their module on first use (PEP 562).

`od-guard inspect` and `od-guard check --static` must start in milliseconds:
`import od_guard` (or one of its subpackages) imports no layer it does not
use, and no Keras or TensorFlow, until an attribute that needs them is asked for.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
import importlib
from typing import Any


def module_getattr(
  module: str,
  exports: Mapping[str, str],
  *,
  submodules: Collection[str] = (),
) -> Callable[[str], Any]:
  """A module-level `__getattr__` that imports what it returns when asked.

      __getattr__ = _lazy.module_getattr(__name__, {"check": "od_guard.odapi.preflight"})

  Args:
    module: the `__name__` of the module the function serves.
    exports: {attribute: the module that defines it under that name}, or
      "module:name" where it has another name there.
    submodules: names of `module`'s submodules, returned as attributes.

  Returns:
    The function to bind to the module's `__getattr__`.
  """

  def __getattr__(name: str) -> Any:
    if name in exports:
      defined_in, _, attribute = exports[name].partition(":")
      return getattr(importlib.import_module(defined_in), attribute or name)
    if name in submodules:
      return importlib.import_module(f"{module}.{name}")
    raise AttributeError(f"module {module!r} has no attribute {name!r}")

  return __getattr__
