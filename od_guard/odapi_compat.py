"""`python -m od_guard.odapi_compat MODULE [FLAGS...]`: runs a stock OD API module
(object_detection.model_main_tf2, exporter_main_v2, ...) with od_guard's compat
layer installed before TensorFlow is imported (see `od_guard.odapi.compat`);
OD_GUARD_COMPAT=off runs it without."""

from od_guard.odapi.compat import active
from od_guard.odapi.compat import apply
from od_guard.odapi.compat import install
from od_guard.odapi.compat import main

__all__ = ["active", "apply", "install", "main"]

if __name__ == "__main__":
  main()
