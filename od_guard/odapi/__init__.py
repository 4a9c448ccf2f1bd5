"""The TF2 Object Detection API integration: reads pipeline.config, diagnoses
config against checkpoint, builds the model as model_lib_v2 does, and drives
the restore pipeline (`preflight.check`, `preflight.check_static`); also the
drop-in `model_main_tf2`, the environment doctor and the tf-slim alias.
Adapts only: matching, diagnosis of restores and policy live in
`od_guard.restore`.

    from od_guard import odapi
    report = odapi.check("pipeline.config", model_dir="train")
"""

from od_guard import _lazy

_EXPORTS = {
  "check": "od_guard.odapi.preflight",
  "check_static": "od_guard.odapi.preflight",
}

__all__ = list(_EXPORTS)
__getattr__ = _lazy.module_getattr(__name__, _EXPORTS)
