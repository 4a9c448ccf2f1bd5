r"""`python -m od_guard.exporter_main_v2`: the OD API's exporter_main_v2 with a
preflight of --trained_checkpoint_dir.

The stable entry point; the implementation is `od_guard.odapi.exporter_main_v2`.

  python -m od_guard.exporter_main_v2 --input_type=image_tensor \
      --pipeline_config_path=pipeline.config --trained_checkpoint_dir=train \
      --output_directory=exported
"""

from od_guard.odapi import exporter_main_v2 as _impl

if __name__ == "__main__":
  from absl import app

  _impl.define_flags()
  app.run(_impl.main)
