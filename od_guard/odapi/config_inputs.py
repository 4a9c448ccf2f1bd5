"""The parts of a pipeline.config beyond the fine-tune fields, read from its
text without a schema (every route reads them the same way): the input
readers' paths, train_config.num_steps, and the TF1-only fields that TF2
training rejects or ignores.

Only protobuf's text format is parsed here (`config_text.parse_tree`); names
are matched as written, so a field the installed OD API does not define is
still seen.
"""

from __future__ import annotations

import contextlib
import dataclasses

from od_guard.odapi import config_text

# train_config fields of the TF1 trainers: TF2's model_lib_v2 raises on the
# first and ignores the others; the value is the TF2 replacement.
TF1_TRAIN_FIELDS = {
  "load_all_detection_checkpoint_vars": (
    'remove it; fine_tune_checkpoint_type: "detection" (or "full") says what is restored'
  ),
  "from_detection_checkpoint": 'replace it with fine_tune_checkpoint_type: "detection"',
  "freeze_variables": "remove it (TF2 training ignores it; it trains every variable)",
  "update_trainable_variables": "remove it (TF2 training ignores it)",
  "sync_replicas": "remove it (TF2 uses tf.distribute strategies instead)",
  "replicas_to_aggregate": "remove it (TF2 uses tf.distribute strategies instead)",
  "startup_delay_steps": "remove it (TF2 training ignores it)",
  "bias_grad_multiplier": "remove it (TF2 training ignores it)",
}


@dataclasses.dataclass(frozen=True)
class InputReader:
  """One input reader's paths as written.

  Attributes:
    role: 'train_input_reader' or 'eval_input_reader[i]'.
    label_map_path: '' when unset.
    input_paths: tf_record_input_reader.input_path values.
  """

  role: str
  label_map_path: str
  input_paths: tuple[str, ...]

  def to_dict(self) -> dict:
    return {
      "role": self.role,
      "label_map_path": self.label_map_path,
      "input_paths": list(self.input_paths),
    }


@dataclasses.dataclass(frozen=True)
class ConfigInputs:
  num_steps: int = 0
  train_input: InputReader | None = None
  eval_inputs: tuple[InputReader, ...] = ()
  tf1_train_fields: tuple[str, ...] = ()  # "name: value" as written


def _fields(message: config_text.Message, name: str) -> list[config_text.Field]:
  return [f for f in message.fields if f.name == name]


def _messages(message: config_text.Message, name: str) -> list[config_text.Message]:
  return [f.value for f in _fields(message, name) if isinstance(f.value, config_text.Message)]


def _strings(message: config_text.Message, name: str) -> list[str]:
  return [
    f.value.text
    for f in _fields(message, name)
    if isinstance(f.value, config_text.Scalar) and f.value.text
  ]


def _reader(role: str, message: config_text.Message) -> InputReader:
  paths = [
    p
    for tf_record in _messages(message, "tf_record_input_reader")
    for p in _strings(tf_record, "input_path")
  ]
  label_maps = _strings(message, "label_map_path")
  return InputReader(role, label_maps[-1] if label_maps else "", tuple(paths))


def read(text: str, tree: config_text.Message | None = None) -> ConfigInputs:
  """Reads the input readers, num_steps and TF1-only fields of a config's text
  (empty when the text does not parse: the config's own parser says why);
  `tree` is the text already parsed, when the caller has it."""
  if tree is None:
    try:
      tree = config_text.parse_tree(text)
    except (config_text.TextFormatError, RecursionError):
      return ConfigInputs()
  train = _messages(tree, "train_config")
  num_steps = 0
  tf1 = []
  for t in train:
    for f in t.fields:
      if f.name == "num_steps" and isinstance(f.value, config_text.Scalar):
        with contextlib.suppress(ValueError):
          num_steps = int(f.value.text)
      if f.name in TF1_TRAIN_FIELDS and isinstance(f.value, config_text.Scalar):
        tf1.append(f"{f.name}: {f.value.text}")
  train_readers = _messages(tree, "train_input_reader")
  return ConfigInputs(
    num_steps=num_steps,
    train_input=_reader("train_input_reader", train_readers[-1]) if train_readers else None,
    eval_inputs=tuple(
      _reader(f"eval_input_reader[{i}]", m)
      for i, m in enumerate(_messages(tree, "eval_input_reader"))
    ),
    tf1_train_fields=tuple(tf1),
  )
