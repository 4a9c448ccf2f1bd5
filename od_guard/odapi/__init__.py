"""The TF2 Object Detection API integration: reads pipeline.config, diagnoses
config against checkpoint, builds the model as model_lib_v2 does, and drives
the restore pipeline (`preflight.check`, `preflight.check_static`); also the
drop-in `model_main_tf2`, the environment doctor and the tf-slim alias.
Adapts only: matching, diagnosis of restores and policy live in
`od_guard.restore`.

    from od_guard import odapi
    report = odapi.check("pipeline.config", model_dir="train")
"""

import importlib

_EXPORTS = {
  "check": ("od_guard.odapi.preflight", "check"),
  "check_static": ("od_guard.odapi.preflight", "check_static"),
}

__all__ = list(_EXPORTS)


def __getattr__(name: str):
  if name in _EXPORTS:
    module, attribute = _EXPORTS[name]
    return getattr(importlib.import_module(module), attribute)
  raise AttributeError(f"module 'od_guard.odapi' has no attribute {name!r}")
