r"""`python -m od_guard.model_main_tf2`: the OD API's model_main_tf2 with a restore preflight.

The stable entry point; the implementation is `od_guard.odapi.model_main_tf2`.

  python -m od_guard.model_main_tf2 --pipeline_config_path=pipeline.config \
      --model_dir=train --alsologtostderr
"""

from od_guard.odapi import model_main_tf2 as _impl

if __name__ == "__main__":
  from absl import app

  _impl.define_flags()
  app.run(_impl.main)
