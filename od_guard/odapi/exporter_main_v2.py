r"""Drop-in for the OD API's exporter_main_v2, with a preflight of the checkpoint.

Every flag of object_detection/exporter_main_v2.py, with the same names and
defaults, plus od_guard's:

  --guard_policy       strict | default | lenient (default: default)
  --guard_only         run the preflight, write the report, exit
  --guard_report_dir   where report.json / report.txt go
                       (default: <output_directory>/od_guard)

exporter_lib_v2.export_inference_graph builds the model from the config,
restores `tf.train.Checkpoint(model=...)` from the CheckpointManager's latest
checkpoint in --trained_checkpoint_dir (its `checkpoint` state file) with
`expect_partial()`, and asserts that something was restored. A directory
copied without its state file, or whose state file names a path on another
machine (`/content/training/ckpt-3`), gives "AssertionError: No checkpoint
specified (save_path=None)" or a NotFoundError on the named path
(tensorflow/models#9209). Before anything is exported, the directory is
resolved as the exporter resolves it, the checkpoint named there is matched
against the config's model with whole-model ("full") restore semantics
(`preflight.check_eval(mode=EXPORT)`), and a failing verdict exits 1 with
the fix; a passing one runs the stock export in-process, unchanged.

  python -m od_guard.exporter_main_v2 --input_type=image_tensor \
      --pipeline_config_path=pipeline.config --trained_checkpoint_dir=train \
      --output_directory=exported
"""

from __future__ import annotations

import os
import sys

from absl import app
from absl import flags
from absl import logging

from od_guard.odapi import guard_flags

EXIT_FAILED_PREFLIGHT = 1
EXIT_BAD_INPUT = 2
REQUIRED = ("pipeline_config_path", "trained_checkpoint_dir", "output_directory")


def define_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
  """Defines the stock exporter_main_v2 flags and od_guard's on `flag_values`."""
  fv = flag_values
  flags.DEFINE_string(
    "input_type",
    "image_tensor",
    "The exported model's input: image_tensor, encoded_image_string_tensor, "
    "tf_example, float_image_tensor or image_and_boxes_tensor.",
    flag_values=fv,
  )
  flags.DEFINE_string(
    "pipeline_config_path", None, "The pipeline.config (TrainEvalPipelineConfig).", flag_values=fv
  )
  flags.DEFINE_string(
    "trained_checkpoint_dir", None, "The training run's checkpoint directory.", flag_values=fv
  )
  flags.DEFINE_string("output_directory", None, "Where the export is written.", flag_values=fv)
  flags.DEFINE_string(
    "config_override",
    "",
    "A TrainEvalPipelineConfig text proto merged over the pipeline config.",
    flag_values=fv,
  )
  flags.DEFINE_boolean(
    "use_side_inputs", False, "Export side inputs besides the image input.", flag_values=fv
  )
  flags.DEFINE_string(
    "side_input_shapes",
    "",
    "With --use_side_inputs: the side inputs' fixed shapes, comma-separated "
    "dimensions (-1 for unknown), '/' between inputs.",
    flag_values=fv,
  )
  flags.DEFINE_string(
    "side_input_types",
    "",
    "With --use_side_inputs: the side inputs' types, comma-separated.",
    flag_values=fv,
  )
  flags.DEFINE_string(
    "side_input_names",
    "",
    "With --use_side_inputs: the side inputs' names, comma-separated.",
    flag_values=fv,
  )
  guard_flags.define_policy(fv)
  flags.DEFINE_bool(
    "guard_only",
    False,
    "Run the od_guard preflight, write its report, and exit without exporting.",
    flag_values=fv,
  )
  flags.DEFINE_string(
    "guard_report_dir",
    None,
    "Where od_guard writes report.json and report.txt (default: <output_directory>/od_guard).",
    flag_values=fv,
  )


def _config_path(fv, report_dir: str) -> str:
  """The config the export uses: the file, or (with --config_override) the
  file with the override merged, written next to the report."""
  if not fv.config_override:
    return fv.pipeline_config_path
  from google.protobuf import text_format

  from od_guard.checkpoint import fileio
  from od_guard.odapi import config as pipeline_config

  message, _ = pipeline_config.parse_with_text(fv.pipeline_config_path)
  text_format.Merge(fv.config_override, message)
  path = os.path.join(report_dir, "pipeline_with_override.config")
  fileio.atomic_write_text(path, text_format.MessageToString(message))
  return path


def preflight(fv):
  """The export preflight: (report, report directory), or raises OdGuardError
  when the config cannot be read."""
  from od_guard.odapi import preflight as preflight_lib
  from od_guard.restore import policy as policy_lib

  report_dir = fv.guard_report_dir or os.path.join(fv.output_directory, "od_guard")
  report = preflight_lib.check_eval(
    _config_path(fv, report_dir),
    fv.trained_checkpoint_dir,
    policy=policy_lib.preset(fv.guard_policy),
    mode=preflight_lib.EXPORT,
  )
  return report, report_dir


def _export(fv) -> None:
  """What stock exporter_main_v2's main does, in-process."""
  from od_guard.odapi import compat as odapi_compat

  odapi_compat.apply()
  from google.protobuf import text_format
  from object_detection import exporter_lib_v2
  from object_detection.protos import pipeline_pb2
  import tensorflow.compat.v2 as tf

  tf.enable_v2_behavior()
  pipeline_config = pipeline_pb2.TrainEvalPipelineConfig()
  with tf.io.gfile.GFile(fv.pipeline_config_path, "r") as f:
    text_format.Merge(f.read(), pipeline_config)
  text_format.Merge(fv.config_override, pipeline_config)
  exporter_lib_v2.export_inference_graph(
    fv.input_type,
    pipeline_config,
    fv.trained_checkpoint_dir,
    fv.output_directory,
    fv.use_side_inputs,
    fv.side_input_shapes,
    fv.side_input_types,
    fv.side_input_names,
  )


def run(fv: flags.FlagValues) -> int:
  """Runs the drop-in with parsed flags; returns the process exit code."""
  from od_guard import errors
  from od_guard.odapi import compat as odapi_compat
  from od_guard.report import publish

  for name in REQUIRED:
    if not fv[name].value:
      print(
        f"od_guard.exporter_main_v2: --{name} is required (as for exporter_main_v2).",
        file=sys.stderr,
      )
      return EXIT_BAD_INPUT
  try:
    # Before anything imports TensorFlow (OD_GUARD_COMPAT=off turns it off).
    odapi_compat.install()
    report, report_dir = preflight(fv)
  except errors.OdGuardError as e:
    print(f"od_guard: error: {type(e).__name__}: {e.format()}", file=sys.stderr, flush=True)
    return EXIT_BAD_INPUT
  publish.publish(
    report,
    json_path=os.path.join(report_dir, "report.json"),
    text_path=os.path.join(report_dir, "report.txt"),
  )
  if report.verdict.failed:
    logging.error(
      "od_guard: export preflight FAILED (%s); not exporting. Report: %s",
      "; ".join(report.verdict.reasons[:3]),
      report_dir,
    )
    return EXIT_FAILED_PREFLIGHT
  if fv.guard_only:
    return 0
  _export(fv)
  return 0


def main(argv) -> None:
  del argv
  sys.exit(run(flags.FLAGS))


if __name__ == "__main__":
  define_flags()
  app.run(main)
