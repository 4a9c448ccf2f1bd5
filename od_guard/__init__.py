"""od_guard: no training run starts on the wrong weights.

    >>> inv = od_guard.read_inventory("path/to/ckpt-0")
    >>> report = od_guard.preflight.check("pipeline.config", model_dir="train")

Submodules are imported on first use, so `od-guard inspect` and
`od-guard check --static` start in milliseconds.
"""

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "OdGuardError": ("od_guard.errors", "OdGuardError"),
    "Inventory": ("od_guard.inventory", "Inventory"),
    "read_inventory": ("od_guard.inventory", "read_inventory"),
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
  if name in _EXPORTS:
    module, attribute = _EXPORTS[name]
    return getattr(importlib.import_module(module), attribute)
  try:
    return importlib.import_module(f"od_guard.{name}")
  except ModuleNotFoundError as e:
    raise AttributeError(f"module 'od_guard' has no attribute {name!r}") from e
