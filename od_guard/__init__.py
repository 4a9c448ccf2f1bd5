"""od_guard: no training run starts on the wrong weights.

The public API (everything else is importable, but may move between releases):

    import od_guard
    inv = od_guard.read_inventory("path/to/ckpt-0")          # no TensorFlow
    report = od_guard.odapi.check("pipeline.config", model_dir="train")
    guard = od_guard.keras.RestoreGuard("pretrained/ckpt-3")  # a Keras callback
    report = od_guard.keras.restore(model, "pretrained/ckpt-3")

Layers (see the README's Layout): `checkpoint` (reading, no TF) -> `restore`
(matching, diagnosis, policy) -> `report` (record and renderings) ->
`naming`, `odapi`, `keras` (integrations). Subpackages load on first use, so
`od-guard inspect` and `od-guard check --static` start in milliseconds.
"""

import importlib

__version__ = "0.1.0"

_EXPORTS = {
  "OdGuardError": ("od_guard.errors", "OdGuardError"),
  "Inventory": ("od_guard.checkpoint.inventory", "Inventory"),
  "read_inventory": ("od_guard.checkpoint.inventory", "read_inventory"),
  "Report": ("od_guard.report.record", "Report"),
  "Policy": ("od_guard.restore.policy", "Policy"),
  "policy": ("od_guard.restore.policy", "preset"),
}
_SUBPACKAGES = ("checkpoint", "restore", "report", "naming", "odapi", "keras", "testing")

__all__ = [
  "Inventory",
  "OdGuardError",
  "Policy",
  "Report",
  "__version__",
  "checkpoint",
  "keras",
  "naming",
  "odapi",
  "policy",
  "read_inventory",
  "report",
  "restore",
  "testing",
]


def __getattr__(name: str):
  if name in _EXPORTS:
    module, attribute = _EXPORTS[name]
    return getattr(importlib.import_module(module), attribute)
  if name in _SUBPACKAGES or name in ("cli", "errors"):
    return importlib.import_module(f"od_guard.{name}")
  raise AttributeError(f"module 'od_guard' has no attribute {name!r}")
