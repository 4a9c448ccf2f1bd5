"""Makes the stock TF2 Object Detection API importable on the supported stacks.

tf-slim 1.1.0 (the newest release, a dependency of the OD API) calls
``control_flow_ops.case`` and ``control_flow_ops.cond``; TensorFlow 2.13 moved
both to their own modules, so the first training step fails with
``AttributeError: module 'tensorflow.python.ops.control_flow_ops' has no
attribute 'case'``. `apply()` aliases them back, in this process only, before
``object_detection`` is imported. No installed file is edited.

Run any OD API module with the alias applied:

    python -m od_guard.odapi_compat object_detection.model_main_tf2 --pipeline_config_path=...
"""

from __future__ import annotations

import runpy
import sys


def apply() -> list[str]:
  """Applies the aliases TF >= 2.13 needs; returns the names it aliased.

  Safe to call more than once, and a no-op on TensorFlow versions that still
  have the functions.
  """
  from tensorflow.python.ops import control_flow_ops

  aliased = []
  if not hasattr(control_flow_ops, "case"):
    from tensorflow.python.ops import control_flow_case

    control_flow_ops.case = control_flow_case.case
    aliased.append("control_flow_ops.case")
  if not hasattr(control_flow_ops, "cond"):
    from tensorflow.python.ops import cond

    control_flow_ops.cond = cond.cond
    aliased.append("control_flow_ops.cond")
  return aliased


def main(argv: list[str] | None = None) -> None:
  """Runs `argv[0]` as ``__main__`` with the aliases applied."""
  argv = list(sys.argv[1:] if argv is None else argv)
  if not argv or argv[0].startswith("-"):
    sys.exit(
      "usage: python -m od_guard.odapi_compat MODULE [FLAGS...]\n"
      "e.g.  python -m od_guard.odapi_compat object_detection.model_main_tf2 "
      "--pipeline_config_path=pipeline.config --model_dir=train"
    )
  apply()
  module = argv[0]
  sys.argv = [module] + argv[1:]
  runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
  main()
