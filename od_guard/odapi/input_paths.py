"""Diagnoses of the config beyond the checkpoint, from its text alone (no TF):
the input readers' paths and label maps, and the TF1-only fields and
feature extractor names that TF2 training rejects or ignores.

The train input reader's problems are errors (stock model_main_tf2 fails a few
seconds in, when it builds the dataset); the eval readers' are warnings (only
evaluation fails). Every finding is independent of the others, so all of them
are reported at once.
"""

from __future__ import annotations

import glob
import os

from od_guard.checkpoint import fileio
from od_guard.odapi import config as pipeline_config
from od_guard.odapi import config_inputs
from od_guard.odapi import config_text
from od_guard.restore import findings

Finding = findings.Finding

# TF1-only feature_extractor.type names (the OD API's TF1 maps) and their TF2 names.
TF1_FEATURE_EXTRACTORS = {
  "ssd_mobilenet_v1": "ssd_mobilenet_v1_keras",
  "ssd_mobilenet_v1_fpn": "ssd_mobilenet_v1_fpn_keras",
  "ssd_mobilenet_v2": "ssd_mobilenet_v2_keras",
  "ssd_mobilenet_v2_fpn": "ssd_mobilenet_v2_fpn_keras",
  "ssd_resnet50_v1_fpn": "ssd_resnet50_v1_fpn_keras",
  "ssd_resnet101_v1_fpn": "ssd_resnet101_v1_fpn_keras",
  "ssd_resnet152_v1_fpn": "ssd_resnet152_v1_fpn_keras",
  "faster_rcnn_resnet50": "faster_rcnn_resnet50_keras",
  "faster_rcnn_resnet101": "faster_rcnn_resnet101_keras",
  "faster_rcnn_resnet152": "faster_rcnn_resnet152_keras",
  "faster_rcnn_inception_resnet_v2": "faster_rcnn_inception_resnet_v2_keras",
}
_TF1_ONLY_NO_TF2 = (
  "ssd_inception_v2",
  "ssd_inception_v3",
  "ssd_mobilenet_v1_ppn",
  "ssd_mobilenet_v2_mnasfpn",
  "ssd_mobilenet_v3_large",
  "ssd_mobilenet_v3_small",
  "ssd_mobilenet_edgetpu",
  "ssd_resnet50_v1_ppn",
  "ssd_resnet101_v1_ppn",
  "ssd_resnet152_v1_ppn",
  "embedded_ssd_mobilenet_v1",
  "ssd_pnasnet",
  "ssd_mobiledet_cpu",
  "ssd_mobiledet_dsp",
  "ssd_mobiledet_edgetpu",
  "ssd_mobiledet_gpu",
  "ssd_spaghettinet",
  "faster_rcnn_nas",
  "faster_rcnn_pnas",
  "faster_rcnn_inception_v2",
)
_GLOB_CHARS = ("*", "?", "[")


def diagnose(config: pipeline_config.FineTuneConfig) -> list[Finding]:
  """Every input-path, label-map and TF1-field finding of `config`."""
  out: list[Finding] = []
  if config.train_input is not None:
    out.extend(_reader(config, config.train_input, train=True))
  for reader in config.eval_inputs:
    out.extend(_reader(config, reader, train=False))
  out.extend(_tf1_fields(config))
  out.extend(_tf1_feature_extractor(config))
  return out


def _severity(train: bool) -> str:
  return findings.ERROR if train else findings.WARNING


def _stock(train: bool, what: str) -> str:
  if train:
    return f"fails seconds after start, when it builds the training dataset ({what})"
  return f"training runs; evaluation fails when it builds the eval dataset ({what})"


def _resolve(path: str) -> str:
  return path if os.path.isabs(path) or fileio.is_remote(path) else os.path.abspath(path)


def _reader(
  config: pipeline_config.FineTuneConfig, reader: config_inputs.InputReader, *, train: bool
) -> list[Finding]:
  out = []
  placeholders = [
    (field, value)
    for field, value in [("label_map_path", reader.label_map_path)]
    + [("tf_record_input_reader.input_path", p) for p in reader.input_paths]
    if pipeline_config.PLACEHOLDER in value
  ]
  if placeholders:
    out.append(
      Finding(
        "input_path_placeholder",
        _severity(train),
        f"{reader.role} still holds the zoo's PATH_TO_BE_CONFIGURED placeholder.",
        detail="; ".join(f'{field}: "{value}"' for field, value in placeholders),
        fix=(
          f"In {reader.role}, set label_map_path to your label map (.pbtxt) and "
          "tf_record_input_reader { input_path } to your TFRecord file(s) (globs allowed)."
        ),
        stock_outcome=_stock(train, "NotFoundError"),
        data={"reader": reader.role, "fields": [f for f, _ in placeholders]},
      )
    )
  missing = []
  for value in reader.input_paths:
    if pipeline_config.PLACEHOLDER in value or fileio.is_remote(value):
      continue
    resolved = _resolve(value)
    if any(c in value for c in _GLOB_CHARS):
      if not glob.glob(resolved):
        missing.append(f'input_path "{value}" matches no file ({resolved})')
    elif not os.path.exists(resolved):
      missing.append(f'input_path "{value}" does not exist ({resolved})')
  label_map = reader.label_map_path
  label_map_exists = False
  if label_map and pipeline_config.PLACEHOLDER not in label_map and not fileio.is_remote(label_map):
    resolved = _resolve(label_map)
    if not os.path.isfile(resolved):
      missing.append(f'label_map_path "{label_map}" does not exist ({resolved})')
    else:
      label_map_exists = True
  if missing:
    out.append(
      Finding(
        "input_path_missing",
        _severity(train),
        f"{reader.role} names files that are not there.",
        detail="; ".join(missing),
        fix=(
          "Fix the paths in "
          f"{reader.role} (relative paths resolve against the working directory, "
          f"{os.getcwd()}, not the config's folder)."
        ),
        stock_outcome=_stock(train, "NotFoundError"),
        data={"reader": reader.role},
      )
    )
  if label_map_exists:
    out.extend(_label_map(config, reader, _resolve(label_map), train=train))
  return out


def _label_map(
  config: pipeline_config.FineTuneConfig,
  reader: config_inputs.InputReader,
  path: str,
  *,
  train: bool,
) -> list[Finding]:
  try:
    with open(path, encoding="utf-8") as f:
      tree = config_text.parse_tree(f.read())
    ids = []
    for item in (f.value for f in tree.fields if f.name == "item"):
      if not isinstance(item, config_text.Message):
        raise ValueError("item is not a message")
      for field in item.fields:
        if field.name == "id" and isinstance(field.value, config_text.Scalar):
          ids.append(int(field.value.text))
    if not ids:
      raise ValueError("no item { id: ... } entries")
    if min(ids) < 1:
      raise ValueError("label map ids must be >= 1 (0 is the background)")
  except (OSError, UnicodeDecodeError, ValueError, config_text.TextFormatError) as e:
    return [
      Finding(
        "label_map_invalid",
        _severity(train),
        f"{reader.role}'s label map cannot be read as a label map.",
        detail=f"{path}: {e}",
        fix='Write it as item { id: 1 name: "class_a" } ... (ids from 1).',
        stock_outcome=_stock(train, "ParseError / ValueError from label_map_util"),
        data={"reader": reader.role},
      )
    ]
  classes = max(ids)
  if classes == config.num_classes:
    return []
  return [
    Finding(
      "label_map_num_classes_differ",
      findings.WARNING,
      f"{reader.role}'s label map has {classes} classes; the config's num_classes is "
      f"{config.num_classes}.",
      detail=f"{path}: {len(ids)} items, largest id {classes}",
      fix=f"Set num_classes: {classes} in the model section (or fix the label map).",
      stock_outcome=(
        "trains; classes above num_classes are dropped from the ground truth"
        if classes > config.num_classes
        else "trains with class outputs no label uses"
      ),
      data={"reader": reader.role, "label_map_classes": classes},
    )
  ]


def _tf1_fields(config: pipeline_config.FineTuneConfig) -> list[Finding]:
  out = []
  for written in config.tf1_train_fields:
    name, _, value = written.partition(":")
    value = value.strip()
    if value.lower() in ("false", "0", "f"):
      continue
    raises = name == "load_all_detection_checkpoint_vars"
    # from_detection_checkpoint still decides the type when none is set; the
    # others are silently ignored (the zoo's own TF2 configs carry sync_replicas).
    severity = (
      findings.ERROR
      if raises
      else findings.WARNING
      if name == "from_detection_checkpoint"
      else findings.INFO
    )
    out.append(
      Finding(
        "tf1_config_field",
        severity,
        f"train_config.{name} is a TF1 field: "
        + ("TF2 training refuses it." if raises else "TF2 training ignores it."),
        detail=f"train_config {{ {written} }} in {config.path}",
        fix=f"{config_inputs.TF1_TRAIN_FIELDS[name][0].upper()}{config_inputs.TF1_TRAIN_FIELDS[name][1:]}.",
        stock_outcome=(
          "ValueError: train_pb2.load_all_detection_checkpoint_vars unsupported in TF2"
          if raises
          else "ignored without a word"
        ),
        data={"field": name},
      )
    )
  return out


def _tf1_feature_extractor(config: pipeline_config.FineTuneConfig) -> list[Finding]:
  ftype = config.feature_extractor_type
  if ftype not in TF1_FEATURE_EXTRACTORS and ftype not in _TF1_ONLY_NO_TF2:
    return []
  tf2 = TF1_FEATURE_EXTRACTORS.get(ftype)
  return [
    Finding(
      "tf1_feature_extractor",
      findings.ERROR,
      f'feature_extractor.type "{ftype}" is a TF1 feature extractor; the TF2 OD API does '
      "not build it.",
      detail=f"model.{config.meta_architecture}.feature_extractor in {config.path}",
      fix=(
        f'Set feature_extractor {{ type: "{tf2}" }} (its TF2 Keras version).'
        if tf2
        else "It has no TF2 version: start from a TF2 Detection Zoo config."
      ),
      stock_outcome=(
        f"ValueError: {ftype} is not supported for tf version 2. See `model_builder.py` "
        "for features extractors compatible with different versions of Tensorflow"
      ),
      data={"tf2_type": tf2 or ""},
    )
  ]


def _local(path: str) -> bool:
  return bool(path) and not path.startswith("gs://") and "PATH_TO_BE_CONFIGURED" not in path


def diagnose_tpu(
  config: pipeline_config.FineTuneConfig, model_dir: str | None, *, tpu_name: str | None
) -> list[Finding]:
  """Under --use_tpu, the paths a Cloud TPU (TPU Node) reads itself must be
  gs:// (tensorflow/models#8947): the input readers' files, the fine-tune
  checkpoint, and model_dir, where it writes checkpoints. A TPU VM
  (`--tpu_name=local`) reads its own disk: nothing to check there.

  Args:
    config: the parsed config.
    model_dir: --model_dir.
    tpu_name: --tpu_name.
  """
  if tpu_name == "local":
    return []
  named = [("--model_dir", model_dir or ""), ("fine_tune_checkpoint", config.fine_tune_checkpoint)]
  for reader in [config.train_input, *config.eval_inputs]:
    if reader is not None:
      named.extend((f"{reader.role}.input_path", p) for p in reader.input_paths)
  local = [(where, p) for where, p in named if _local(p)]
  if not local:
    return []
  return [
    Finding(
      "tpu_local_path",
      findings.ERROR,
      f"Under --use_tpu, {len(local)} path(s) the TPU reads or writes itself are not on "
      "GCS: a Cloud TPU reads and writes only gs:// paths.",
      detail="; ".join(f"{where}: {p}" for where, p in local),
      fix=(
        "Copy the data and the checkpoint to a bucket the TPU's service account can read "
        "(gsutil cp -r ...), and use gs:// paths for them and for --model_dir; on a TPU "
        "VM, pass --tpu_name=local."
      ),
      stock_outcome=(
        'fails when the TPU opens the first local path (TF1: "File system scheme '
        "'[local]' not implemented\"); not measured here (no TPU)"
      ),
      data={"paths": [p for _, p in local]},
    )
  ]
