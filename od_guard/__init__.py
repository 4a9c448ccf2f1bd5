"""od_guard: no training run starts on the wrong weights.

The public API (everything else is importable, but may move between releases):

    import od_guard
    inv = od_guard.read_inventory("path/to/ckpt-0")          # no TensorFlow
    report = od_guard.odapi.check("pipeline.config", model_dir="train")
    guard = od_guard.keras.RestoreGuard("pretrained/ckpt-3")  # a Keras callback
    report = od_guard.keras.restore(model, "pretrained/ckpt-3")

Layers (see docs/design.md): `checkpoint` (reading, no TF) -> `restore`
(matching, diagnosis, policy) -> `report` (record and renderings) ->
`naming`, `odapi`, `keras` (integrations). Subpackages load on first use, so
`od-guard inspect` and `od-guard check --static` start in milliseconds.
"""

from od_guard import _lazy

__version__ = "0.2.0"  # the next release's (CHANGELOG.md: Versions)

_EXPORTS = {
  "OdGuardError": "od_guard.errors",
  "Inventory": "od_guard.checkpoint.inventory",
  "read_inventory": "od_guard.checkpoint.inventory",
  "Report": "od_guard.report.record",
  "Policy": "od_guard.restore.policy",
  "policy": "od_guard.restore.policy:preset",
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

__getattr__ = _lazy.module_getattr(__name__, _EXPORTS, submodules=(*_SUBPACKAGES, "cli", "errors"))
