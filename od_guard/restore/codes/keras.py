"""The codes of the Keras integration: weight files, layouts, by-name and skip_mismatch
loads, optimizers and layers a restore cannot reach."""

from __future__ import annotations

from od_guard.restore.codes._code import ERROR
from od_guard.restore.codes._code import INFO
from od_guard.restore.codes._code import WARNING
from od_guard.restore.codes._code import Code

_LAYOUT = "od_guard.restore.keras_layout"

CODES = (
  # --- Keras files and layouts.
  Code(
    "keras_file_flavour",
    ERROR,
    "The weight file was written by another Keras than the model's.",
    _LAYOUT,
    "Load it with the Keras that wrote it, or convert the file.",
  ),
  Code(
    "keras_layout_mismatch",
    ERROR,
    "The checkpoint has another Keras's object layout: nothing binds.",
    _LAYOUT,
    "Restore with the Keras that wrote it, or through the proposed key map.",
  ),
  Code(
    "auto_named_layers",
    ERROR,
    "Layers with auto-generated names or positions differ between checkpoint and model.",
    _LAYOUT,
    "Name the layers explicitly, or restore by topology.",
  ),
  Code(
    "head_shape_changed",
    ERROR,
    "The output layer changed width between checkpoint and model.",
    _LAYOUT,
    "Skip the head (skip_mismatch / exclude) or rebuild it with the checkpoint's width.",
  ),
  Code(
    "deferred_restore",
    ERROR,
    "The model is not built: checkpoint values would wait for variables that do not exist.",
    _LAYOUT,
    "Build the model (call it on a batch or model.build(shape)) before restoring.",
    "restores nothing now and reports nothing later",
  ),
  Code(
    "tf_checkpoint_for_keras3",
    INFO,
    "Keras 3 refuses TF checkpoints in load_weights; od_guard restored it with tf.train.Checkpoint.",
    _LAYOUT,
    "",
    "ValueError: File format not supported ... Keras 3 only supports V3 `.keras` and `.weights.h5`",
  ),
  Code(
    "keras_by_name_unbound",
    ERROR,
    "load_weights(by_name=True) binds nothing, or leaves layers empty the file holds under other names.",
    _LAYOUT,
    "Load by topology (by_name=False), name the layers as the file does, or exclude them.",
    "silent: loads what matches by name and leaves the rest random",
  ),
  Code(
    "keras_optimizer_generation",
    ERROR,
    "A legacy (pre-2.11) Keras optimizer's state resumed into the new optimizer, or the reverse.",
    _LAYOUT,
    "Compile with the optimizer generation that saved it, or restore the model only.",
    "ValueError (legacy state into the new optimizer); silent (new state into a legacy one)",
  ),
  Code(
    "keras_layers_never_built",
    WARNING,
    "Layers of a built Keras model have no variables: call() never reaches them.",
    _LAYOUT,
    "Build them before restoring (run the path that uses them), or remove them.",
    "silent: assert_existing_objects_matched() passes; their values stay pending",
  ),
  Code(
    "keras_load_raised",
    ERROR,
    "The Keras loader raised where od_guard predicted a clean restore.",
    _LAYOUT,
    "Report it with the model and file; the loader's own message is in the detail.",
  ),
  Code(
    "keras_skip_mismatch_misses",
    ERROR,
    "skip_mismatch=True skips most of the model's parameters, not a changed head.",
    _LAYOUT,
    "Load the weights of the model's own variant; keep skip_mismatch for a changed head.",
    "silent: a warning per skipped layer, those layers stay random",
  ),
)
