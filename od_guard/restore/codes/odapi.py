"""The codes of the OD API integration's checks: where fine_tune_checkpoint points, the
checkpoint's format and contents against the config, input paths and label maps,
model_dir, evaluation and export directories, the model build, where the check runs."""

from __future__ import annotations

from od_guard.restore.codes._code import ERROR
from od_guard.restore.codes._code import INFO
from od_guard.restore.codes._code import UNBOUND as _UNBOUND
from od_guard.restore.codes._code import VARIES
from od_guard.restore.codes._code import WARNING
from od_guard.restore.codes._code import Code

_STATIC = "od_guard.odapi.static_diagnosis"
_PATH = "od_guard.odapi.fine_tune_path"
_ARCH = "od_guard.odapi.architecture"
_INPUTS = "od_guard.odapi.input_paths"
_MODEL_DIR = "od_guard.odapi.model_dir"
_PREFLIGHT = "od_guard.odapi.preflight"

CODES = (
  # --- The fine-tune checkpoint's path (static tier).
  Code(
    "no_fine_tune_checkpoint",
    WARNING,
    "The config names no fine_tune_checkpoint: the model trains from random weights.",
    _PATH,
    "Set train_config.fine_tune_checkpoint to the zoo model's checkpoint/ckpt-0.",
    "trains from scratch without a word",
  ),
  Code(
    "placeholder_path",
    ERROR,
    "fine_tune_checkpoint still holds the zoo's PATH_TO_BE_CONFIGURED placeholder.",
    _PATH,
    "Point fine_tune_checkpoint at the downloaded checkpoint's prefix.",
    "fails after building the model and the input pipeline (NotFoundError)",
  ),
  Code(
    "windows_path_separator",
    ERROR,
    "fine_tune_checkpoint uses Windows backslashes on a system where they are not separators.",
    _PATH,
    "Use forward slashes (or the checkpoint found nearby).",
    "fails after building the model and the input pipeline (NotFoundError)",
  ),
  Code(
    "checkpoint_not_found",
    ERROR,
    "fine_tune_checkpoint names no checkpoint.",
    _PATH,
    "Point fine_tune_checkpoint at an existing prefix (the one found nearby, when found).",
    "fails after building the model and the input pipeline (NotFoundError)",
  ),
  Code(
    "tf1_checkpoint_name",
    ERROR,
    "fine_tune_checkpoint names a TF1 model.ckpt where the TF2 zoo model has checkpoint/ckpt-0.",
    _PATH,
    "Set fine_tune_checkpoint to the TF2 model's checkpoint/ckpt-0.",
    "fails after building the model and the input pipeline (NotFoundError)",
  ),
  Code(
    "checkpoint_subdir_missing",
    ERROR,
    "fine_tune_checkpoint misses the zoo model's 'checkpoint/' folder.",
    _PATH,
    "Insert checkpoint/ before ckpt-0.",
    "fails after building the model and the input pipeline (NotFoundError)",
  ),
  Code(
    "relative_checkpoint_path",
    VARIES,
    "fine_tune_checkpoint is relative: it resolves against the working directory.",
    _PATH,
    "Use an absolute path (error when it only resolves from the config's folder).",
    "fails after building the model (NotFoundError) when started elsewhere",
  ),
  Code(
    "checkpoint_path_is_file",
    ERROR,
    "fine_tune_checkpoint names one of the checkpoint's files, not its prefix.",
    _PATH,
    "Drop the .index / .data-* suffix.",
    "fails after building the model (the restore finds no checkpoint)",
  ),
  Code(
    "checkpoint_path_is_directory",
    ERROR,
    "fine_tune_checkpoint names a directory, not a checkpoint prefix.",
    _PATH,
    "Append the checkpoint's name (e.g. checkpoint/ckpt-0).",
    "fails after building the model (the restore cannot open a directory)",
  ),
  Code(
    "checkpoint_in_model_dir",
    ERROR,
    "The fine-tune checkpoint lies in model_dir, where training writes its own.",
    _PATH,
    "Use another model_dir, or move the checkpoint out of it.",
    "RuntimeError: Checkpoint dir (...) and model_dir (...) cannot be same.",
  ),
  # --- The checkpoint's format and contents (static tier).
  Code(
    "data_shard_missing",
    WARNING,
    "The checkpoint's data shard is missing: only the index was checked.",
    _STATIC,
    "Copy the .data-00000-of-00001 file beside the .index (an error when training).",
    "fails when restoring (DataLossError / NotFoundError on the data file)",
  ),
  Code(
    "tf1_checkpoint",
    ERROR,
    "The checkpoint is TF1 name-based; the TF2 OD API restores object-based ones only.",
    _STATIC,
    "Use the TF2 zoo model's checkpoint, or convert with `od-guard remap`.",
    "IOError: Checkpoint is expected to be an object-based checkpoint.",
  ),
  Code(
    "saved_model_variables",
    ERROR,
    "fine_tune_checkpoint points at a SavedModel's variables, not a training checkpoint.",
    _STATIC,
    "Point at the zoo model's checkpoint/ckpt-0 instead of saved_model/variables.",
    _UNBOUND,
  ),
  Code(
    "checkpoint_version_v1",
    ERROR,
    "fine_tune_checkpoint_version is V1 (or unset, which means V1).",
    _STATIC,
    "Set fine_tune_checkpoint_version: V2.",
    "ValueError: Checkpoint version should be V2",
  ),
  Code(
    "weightless_checkpoint",
    ERROR,
    "The checkpoint holds no weights, only bookkeeping (a step-0 checkpoint).",
    _STATIC,
    "Use a checkpoint saved after training steps (--checkpoint_every_n).",
    _UNBOUND,
  ),
  Code(
    "checkpoint_type_unsupported",
    ERROR,
    "fine_tune_checkpoint_type is not supported by this meta-architecture.",
    _STATIC,
    "Use a type the meta-architecture's restore_map supports.",
    "ValueError from the meta-architecture's restore_from_objects",
  ),
  Code(
    "checkpoint_type_mismatch",
    ERROR,
    "fine_tune_checkpoint_type does not fit the checkpoint (detection vs classification).",
    _STATIC,
    'Set fine_tune_checkpoint_type to the checkpoint\'s kind ("detection" for a zoo detector).',
    _UNBOUND,
  ),
  Code(
    "dummy_computation_disabled",
    ERROR,
    "run_fine_tune_checkpoint_dummy_computation is false: the backbone is not built in time.",
    _STATIC,
    "Set run_fine_tune_checkpoint_dummy_computation: true (or drop the field).",
    "TypeError: restore_map was expected to return a (str -> Model) mapping",
  ),
  Code(
    "restore_scope_missing",
    ERROR,
    "The restore asks for a scope the checkpoint does not have (renamed?).",
    _STATIC,
    "Use the checkpoint of this architecture, or remap its scopes (`od-guard remap`).",
    _UNBOUND,
  ),
  Code(
    "meta_architecture_mismatch",
    ERROR,
    "The checkpoint was saved by another meta-architecture than the config's.",
    _ARCH,
    "Use the zoo checkpoint of the config's meta-architecture, or the config of the checkpoint.",
    "ValueError: ... Shape mismatch, or the not-bound AssertionError",
  ),
  Code(
    "feature_extractor_mismatch",
    ERROR,
    "The checkpoint's backbone is not the config's feature extractor.",
    _ARCH,
    "Use the checkpoint of the config's feature extractor, or the config of the checkpoint.",
    "ValueError: Cannot assign value to variable ...: Shape mismatch.",
  ),
  Code(
    "neck_mismatch",
    ERROR,
    "The checkpoint's neck (FPN) differs from the config's.",
    _ARCH,
    "Match the config's FPN levels / depth to the checkpoint's.",
    "ValueError: ... Shape mismatch, or the not-bound AssertionError",
  ),
  Code(
    "depth_multiplier_mismatch",
    ERROR,
    "The checkpoint's backbone width (depth_multiplier) differs from the config's.",
    _ARCH,
    "Set the config's depth_multiplier to the checkpoint's.",
    "ValueError: Cannot assign value to variable ...: Shape mismatch.",
  ),
  Code(
    "num_classes_differ",
    VARIES,
    "The checkpoint was trained for another number of classes than the config's.",
    _ARCH,
    'Expected under "detection" (the heads are not restored); an error under "full".',
    "ValueError: ... Shape mismatch when the heads are restored",
  ),
  # --- Input paths, label maps and TF1-only config (static tier).
  Code(
    "input_path_placeholder",
    VARIES,
    "An input reader still holds the zoo's PATH_TO_BE_CONFIGURED placeholder.",
    _INPUTS,
    "Point input_path / label_map_path at your files.",
    "NotFoundError when the input pipeline starts",
  ),
  Code(
    "input_path_missing",
    VARIES,
    "An input reader names files that are not there.",
    _INPUTS,
    "Fix input_path / label_map_path (the nearest existing file is proposed).",
    "NotFoundError when the input pipeline starts",
  ),
  Code(
    "label_map_invalid",
    VARIES,
    "A label map cannot be read as a label map.",
    _INPUTS,
    "Fix the label map's pbtxt syntax (item { id: 1 name: '...' }).",
    "ParseError / ValueError from label_map_util",
  ),
  Code(
    "label_map_num_classes_differ",
    WARNING,
    "The label map's class count differs from num_classes.",
    _INPUTS,
    "Set num_classes to the label map's count.",
    "trains; classes above num_classes are dropped from the ground truth",
  ),
  Code(
    "tf1_config_field",
    VARIES,
    "train_config holds a TF1-only field that TF2 training refuses or ignores.",
    _INPUTS,
    "Drop the field (its TF2 equivalent is named in the finding).",
    "ValueError: ... unsupported in TF2 (or ignored silently)",
  ),
  Code(
    "tf1_feature_extractor",
    ERROR,
    "feature_extractor.type names a TF1 extractor that the TF2 OD API does not build.",
    _INPUTS,
    "Use the TF2 extractor's name (e.g. ssd_mobilenet_v2_keras).",
    "ValueError: ... is not supported for tf version 2.",
  ),
  Code(
    "model_section_incomplete",
    ERROR,
    "The config's meta-architecture has no feature_extractor (often: model.ssd.num_classes "
    "assigned on another meta-architecture's config).",
    _STATIC,
    "Set num_classes inside the config's own meta-architecture, from the zoo's config.",
    "ValueError:  is not supported for tf version 2. (model_builder), before step one",
  ),
  Code(
    "tpu_local_path",
    ERROR,
    "Under --use_tpu (a Cloud TPU Node), a path the TPU reads or writes is not gs://.",
    _INPUTS,
    "Copy data and checkpoint to a bucket and use gs:// paths (on a TPU VM: --tpu_name=local).",
    "fails when the TPU opens the local path (TF1: File system scheme '[local]' not "
    "implemented); not measured here",
  ),
  # --- model_dir as model_lib_v2 resumes it.
  Code(
    "stale_checkpoint_in_model_dir",
    WARNING,
    "model_dir already holds a checkpoint: training resumes from it, not from the fine-tune one.",
    _MODEL_DIR,
    "Use a fresh model_dir, or remove its checkpoints.",
    "resumes silently from the model_dir checkpoint",
  ),
  Code(
    "checkpoint_state_is_directory",
    ERROR,
    "model_dir holds a directory named 'checkpoint', where training writes its state file.",
    _MODEL_DIR,
    "Move the directory out of model_dir.",
    "FailedPreconditionError at the first checkpoint save",
  ),
  Code(
    "model_dir_checkpoints_not_resumed",
    INFO,
    "model_dir holds checkpoints, but training will not resume from any of them.",
    _MODEL_DIR,
    "",
    "starts from the fine-tune checkpoint, ignoring these",
  ),
  Code(
    "model_dir_checkpoint_mismatch",
    ERROR,
    "The checkpoint training would resume from does not fit the configured model.",
    _MODEL_DIR,
    "Use a fresh model_dir for this config.",
    "ValueError: ... Shape mismatch when the resumed checkpoint is restored",
  ),
  Code(
    "model_dir_training_complete",
    VARIES,
    "model_dir's checkpoint is already at num_steps: nothing is left to train.",
    _MODEL_DIR,
    "Raise num_steps, or use a fresh model_dir.",
    "exits 0 without training a single step",
  ),
  # --- Evaluation.
  Code(
    "eval_checkpoint_pending",
    INFO,
    "--checkpoint_dir holds no checkpoint yet: evaluation waits for one.",
    _PREFLIGHT,
    "",
    "waits for a checkpoint (checkpoints_iterator), up to --eval_timeout",
  ),
  Code(
    "checkpoint_dir_missing",
    ERROR,
    "--checkpoint_dir (evaluation) or --trained_checkpoint_dir (export) does not exist.",
    _PREFLIGHT,
    "Use the nearest directory that holds checkpoints (names differing by -, _ or case), "
    "the training run's --model_dir.",
    "evaluation waits ('Waiting for new checkpoint') until --eval_timeout, then exits 0; "
    "the exporter fails: AssertionError: No checkpoint specified (save_path=None)",
  ),
  Code(
    "checkpoint_dir_empty",
    ERROR,
    "--trained_checkpoint_dir holds no checkpoint: the exporter restores nothing.",
    _PREFLIGHT,
    "Point --trained_checkpoint_dir at the training run's --model_dir (or the subfolder "
    "that holds the checkpoints).",
    "AssertionError: No checkpoint specified (save_path=None); nothing is being restored.",
  ),
  Code(
    "checkpoint_state_unusable",
    VARIES,
    "The directory holds checkpoints, but its 'checkpoint' state file is missing or names "
    "none that exists here.",
    _PREFLIGHT,
    'Write the state file: model_checkpoint_path: "ckpt-N" (relative) for the checkpoint to use.',
    "the exporter fails (AssertionError: No checkpoint specified, or NotFoundError on the "
    "named path); evaluation waits until --eval_timeout",
  ),
  Code(
    "checkpoint_dir_eval_only",
    WARNING,
    "--checkpoint_dir makes model_main_tf2 evaluate only, and this command looks like training.",
    _PREFLIGHT,
    "To train, drop --checkpoint_dir.",
    "evaluates only, silently; with no checkpoint there it waits until --eval_timeout",
  ),
  # --- Where the check runs (od-guard check --where repo).
  Code(
    "not_checked_here",
    INFO,
    "A path the config names cannot exist where the check runs (a repository without the "
    "data): it is checked at training time.",
    "od_guard.odapi.repo_mode",
    "Commit the checkpoint's .index (a few KB) or pass --checkpoint to a local copy.",
    "",
  ),
  # --- Building the model (model tier).
  Code(
    "model_build_downloads",
    INFO,
    "Building the model downloads a file (Keras Applications ImageNet weights) that is "
    "not cached here.",
    _PREFLIGHT,
    "For offline runs, put the file at the cache path named (~/.keras/models/...).",
    "downloads it at every build that does not find it; offline: Exception: URL fetch "
    "failure on https://storage.googleapis.com/tensorflow/keras-applications/...",
  ),
  Code(
    "model_build_failed",
    ERROR,
    "The OD API's model builder raised: the model cannot be built from this config.",
    _PREFLIGHT,
    "Fix what the static diagnosis names first; else the model section the error names.",
    "fails with the same error when it builds the model, before step one",
  ),
)
