"""Reads an OD API pipeline.config into what the preflight needs.

Parsing takes the best schema this environment has (`config_schema.load`):
the OD API's generated protos where they import (protobuf 3.x), the same
message classes rebuilt from their serialized descriptors where protobuf >= 4
refuses those modules, and, without the OD API, the text format read with a
partial schema of the fields the preflight needs (`config_text`). None of the
three imports TensorFlow. The result is a frozen `FineTuneConfig`; the parsed
message itself is kept for the model builder (`odapi_message`).
"""

from __future__ import annotations

import dataclasses
import os

from od_guard import _files
from od_guard import _records
from od_guard import errors
from od_guard.checkpoint import fileio
from od_guard.odapi import config_inputs
from od_guard.odapi import config_schema
from od_guard.odapi import config_text

PLACEHOLDER = config_text.PLACEHOLDER
OdApiUnavailableError = config_schema.OdApiUnavailableError


class ConfigError(errors.OdGuardError):
  """The pipeline config cannot be read or parsed."""


@dataclasses.dataclass(frozen=True)
class FineTuneConfig:
  """The parts of a pipeline.config that decide what a fine-tune restores.

  Attributes:
    path: the config file.
    meta_architecture: 'ssd', 'faster_rcnn' or 'center_net'.
    feature_extractor_type: e.g. 'ssd_mobilenet_v2_fpn_keras'.
    num_classes: the configured number of classes.
    add_background_class: SSD's add_background_class (True elsewhere).
    use_depthwise: SSD's feature_extractor.use_depthwise (FPNLite).
    depth_multiplier: SSD feature extractor depth multiplier (1.0 elsewhere).
    image_size: (height, width) of fixed_shape_resizer, or max_dimension for
      keep_aspect_ratio_resizer, as (h, w).
    fine_tune_checkpoint: the path as written in the config.
    fine_tune_checkpoint_type: as written ('' if unset).
    effective_checkpoint_type: what model_lib_v2 will use ('' set from the
      deprecated from_detection_checkpoint).
    fine_tune_checkpoint_version: 'V1' or 'V2' (V1 when unset: the proto default).
    version_set: whether fine_tune_checkpoint_version was written at all.
    run_dummy_computation: run_fine_tune_checkpoint_dummy_computation.
    use_bfloat16: train_config.use_bfloat16.
    num_steps: train_config.num_steps (0: unset).
    train_input: train_input_reader's paths (None without one).
    eval_inputs: each eval_input_reader's paths.
    tf1_train_fields: TF1-only train_config fields as written ("name: value").
  """

  path: str
  meta_architecture: str
  feature_extractor_type: str
  num_classes: int
  add_background_class: bool
  use_depthwise: bool
  depth_multiplier: float
  image_size: tuple[int, int]
  fine_tune_checkpoint: str
  fine_tune_checkpoint_type: str
  effective_checkpoint_type: str
  fine_tune_checkpoint_version: str
  version_set: bool
  run_dummy_computation: bool
  use_bfloat16: bool
  num_steps: int = 0
  train_input: config_inputs.InputReader | None = None
  eval_inputs: tuple[config_inputs.InputReader, ...] = ()
  tf1_train_fields: tuple[str, ...] = ()

  def summary(self) -> str:
    """One line for reports."""
    return (
      f"{self.meta_architecture}, feature_extractor {self.feature_extractor_type}, "
      f'num_classes {self.num_classes}, fine_tune_checkpoint_type "{self.effective_checkpoint_type}"'
    )

  def to_dict(self) -> dict:
    d = dataclasses.asdict(self)
    d["image_size"] = list(self.image_size)
    return d


def _read_bytes(path: str) -> bytes:
  """The config's bytes: a regular file of at most `_files.CONFIG_LIMIT` bytes
  (`od_guard._files`); a remote URI through `fileio`, with the same limit."""
  what, flag, limit = "pipeline config", "--pipeline_config_path", _files.CONFIG_LIMIT
  if not fileio.is_remote(path):
    return _files.read_bytes(
      fileio.local(path), what=what, flag=flag, limit=limit, error=ConfigError
    )
  if not fileio.exists(path):
    raise ConfigError(
      f"The pipeline config {path!r} does not exist.", received=path, fix=f"Check {flag}."
    )
  if fileio.isdir(path):
    raise ConfigError(
      f"{path!r} is a directory, not a pipeline config.",
      received=path,
      fix=f"Point {flag} at the pipeline.config file inside it.",
    )
  with fileio.open_binary(path) as f:
    raw = f.read(limit + 1)
  if len(raw) > limit:
    raise ConfigError(
      f"The pipeline config {path!r} is more than the {limit:,} bytes od_guard reads for a "
      "pipeline config.",
      received=f"{path} (at least {len(raw):,} bytes)",
      fix=f"Pass the pipeline config itself: a real one is far smaller than {limit >> 20} MB.",
    )
  return raw


def _read_text(path: str) -> str:
  raw = _read_bytes(path)
  try:
    return raw.decode("utf-8")
  except UnicodeDecodeError as e:
    raise ConfigError(
      f"{path!r} is not a text file, so it cannot be a pipeline config.",
      received=f"{path} ({len(raw):,} bytes, starts with {raw[:16]!r})",
      fix="Pass the pipeline.config (a text protobuf), not a checkpoint or binary file.",
    ) from e


def _invalid(path: str, text: str, e: Exception, *, schema: bool) -> ConfigError:
  if "Expected string but found" in str(e):
    fix = (
      "Quote the value: string fields need double quotes, e.g. "
      'fine_tune_checkpoint: "models/ssd/checkpoint/ckpt-0" (the zoo ships some '
      "configs with an unquoted PATH_TO_BE_CONFIGURED)."
    )
  elif schema:
    fix = (
      "Fix the field at the line and column named above; field names must match "
      "object_detection/protos/*.proto of the installed OD API "
      "(a typo, or a field from a newer or internal OD API version)."
    )
  else:
    fix = (
      "Fix the field at the line and column named above (without the OD API installed, "
      "the syntax and the fields the preflight reads are checked; a field from a newer or "
      "internal OD API version is not valid in the public one)."
    )
  return ConfigError(
    f"{path!r} is not a valid pipeline config: {str(e).rstrip('.')}.",
    received=f"{path} ({len(text):,} characters)",
    fix=fix,
  )


def parse(path: str, *, route: str = config_schema.AUTO):
  """Parses a pipeline.config into a TrainEvalPipelineConfig message.

  `parse_with_text` also returns the text read, for `read`.

  Args:
    path: the config file.
    route: which schema to parse with (`config_schema.ROUTES`); by default
      the best this environment has.

  Returns:
    A TrainEvalPipelineConfig message (GENERATED, DESCRIPTORS), or a
    `config_text.Node` answering like one for the fields the preflight reads
    (NONE).

  Raises:
    ConfigError: missing file, not text, or not a valid pipeline config
      (with the parser's line and column).
    OdApiUnavailableError: `route` names a schema this environment lacks.
  """
  return parse_with_text(path, route=route)[0]


def parse_with_text(path: str, *, route: str = config_schema.AUTO):
  """`parse`, and the config's text as read (one read of the file)."""
  schema = config_schema.load(route)
  text = _read_text(path)
  try:
    if schema.message_class is None:
      try:
        config = config_text.parse(text)
      except config_text.TextFormatError as e:
        raise _invalid(path, text, e, schema=False) from e
    else:
      from google.protobuf import text_format

      config = schema.message_class()
      try:
        text_format.Merge(text, config)
      except text_format.ParseError as e:
        raise _invalid(path, text, e, schema=True) from e
  except RecursionError as e:
    raise ConfigError(
      f"{path!r} nests messages too deeply to be a pipeline config.",
      received=f"{path} (more levels of {{ ... }} than Python's recursion limit)",
      fix="A pipeline config nests a few levels at most: pass the real one.",
    ) from e
  except (ValueError, TypeError, OverflowError) as e:  # what protobuf raises besides ParseError
    raise _invalid(path, text, e, schema=schema.message_class is not None) from e
  if not config.HasField("model") or config.model.WhichOneof("model") is None:
    raise ConfigError(
      f"{path!r} has no model {{ ... }} section.",
      received=path,
      fix="A pipeline config needs model { ssd | faster_rcnn | center_net { ... } }.",
    )
  return config, text


def not_checked(config) -> list[str]:
  """What parsing `config` could not check, in words: with no schema, every
  field the preflight does not read."""
  if not isinstance(config, config_text.Node):
    return []
  return [
    "field names and values outside those the preflight reads: the OD API's schema is "
    "not available here, so unknown or misspelt fields were not checked "
    "(install the OD API for the full schema)"
  ]


def odapi_message(path: str, config):
  """The parsed config as the OD API's own TrainEvalPipelineConfig, which its
  model builder insists on (it checks the message's class).

  Raises:
    OdApiUnavailableError: the OD API's generated protos do not import here.
    ConfigError: see `parse`.
  """
  schema = config_schema.load(config_schema.GENERATED)
  if isinstance(config, schema.message_class):
    return config
  return parse(path, route=config_schema.GENERATED)


def image_size(arch) -> tuple[int, int]:
  """(height, width) the model's image resizer produces; (0, 0) if unknown."""
  resizer = arch.image_resizer
  kind = resizer.WhichOneof("image_resizer_oneof")
  if kind == "fixed_shape_resizer":
    return (resizer.fixed_shape_resizer.height, resizer.fixed_shape_resizer.width)
  if kind == "keep_aspect_ratio_resizer":
    d = resizer.keep_aspect_ratio_resizer.max_dimension
    return (d, d)
  return (0, 0)


def read(path: str, config=None, *, text: str | None = None) -> FineTuneConfig:
  """Reads the fine-tune relevant fields of a pipeline.config.

  Args:
    path: the config file.
    config: an already parsed message (skips parsing).
    text: the config's text, when the caller read it already (`parse_with_text`).

  Raises:
    ConfigError, OdApiUnavailableError: see `parse`.
  """
  if config is None:
    config, text = parse_with_text(path)
  meta = config.model.WhichOneof("model")
  arch = getattr(config.model, meta)
  supported = ("ssd", "faster_rcnn", "center_net")
  if meta not in supported:
    raise ConfigError(
      f"The meta-architecture {meta!r} is not one od_guard checks.",
      received=f"{path}: model {{ {meta} {{ ... }} }}",
      fix=f"od_guard supports {', '.join(supported)}.",
    )
  fe = arch.feature_extractor
  train = config.train_config
  ftype = train.fine_tune_checkpoint_type
  effective = ftype or ("detection" if train.from_detection_checkpoint else "classification")
  # Read from the text without a schema, the same on every route.
  # The schema-less route parsed that tree already.
  tree = config.messages[0] if isinstance(config, config_text.Node) and config.messages else None
  extra = config_inputs.read(_read_text(path) if text is None and tree is None else text, tree)
  return FineTuneConfig(
    path=path,
    meta_architecture=meta,
    feature_extractor_type=fe.type,
    num_classes=arch.num_classes,
    add_background_class=arch.add_background_class if meta == "ssd" else True,
    use_depthwise=bool(getattr(fe, "use_depthwise", False)),
    depth_multiplier=float(getattr(fe, "depth_multiplier", 1.0) or 1.0),
    image_size=image_size(arch),
    fine_tune_checkpoint=train.fine_tune_checkpoint,
    fine_tune_checkpoint_type=ftype,
    effective_checkpoint_type=effective,
    fine_tune_checkpoint_version=_enum_name(train, "fine_tune_checkpoint_version"),
    version_set=train.HasField("fine_tune_checkpoint_version"),
    run_dummy_computation=train.run_fine_tune_checkpoint_dummy_computation,
    use_bfloat16=train.use_bfloat16,
    **_records.fields(extra),  # num_steps, train_input, eval_inputs, tf1_train_fields
  )


def _enum_name(message, field: str) -> str:
  number = getattr(message, field)
  if isinstance(message, config_text.Node):
    return config_text.enum_name(config_text.PARTIAL_SCHEMA[message.type_name][field], number)
  return message.DESCRIPTOR.fields_by_name[field].enum_type.values_by_number[number].name


def resolve_checkpoint_path(value: str) -> str:
  """The path model_lib_v2 will open: relative paths resolve against the
  working directory, not the config's directory."""
  return value if os.path.isabs(value) or fileio.is_remote(value) else os.path.abspath(value)
