"""What the OD API's 34 *_pb2 modules expose, as plain data to compare across
protobuf releases: protobuf 3.20's real generated modules (the odapi
environment, dumped to tests/data/odapi_protos.json by
tests/data/make_odapi_protos.py) against the ones od_guard's compat layer
builds from their descriptors (the modern environment, protobuf 7).

Per module: every public and descriptor attribute (message classes, enum
wrappers, enum value constants, the `_FOO` descriptors protoc names), and per
message (nested ones too) every field (name, number, type, label, default,
message or enum type, oneof), nested type, enum (values), oneof and extension
range; a float field's default as the float32 it is stored as. Imported dependency modules, which protoc-3 output binds under mangled
names, are left out: the layer imports them without binding them, and nothing
in the OD API reads them. Per zoo config: the sha256 of its file, of its parse
serialized deterministically, and of its text-format rendering.
"""

from __future__ import annotations

import hashlib
import importlib
import pathlib
import struct
import types

DUMP = pathlib.Path(__file__).resolve().parent.parent / "data" / "odapi_protos.json"
_LABELS = {1: "optional", 2: "required", 3: "repeated"}
_CPPTYPE_FLOAT = 6  # FieldDescriptor.CPPTYPE_FLOAT


def module_names(protos_dir: pathlib.Path) -> list[str]:
  return sorted(f"object_detection.protos.{p.stem}" for p in protos_dir.glob("*_pb2.py"))


def _default(field) -> str:
  value = field.default_value
  if field.cpp_type == _CPPTYPE_FLOAT and isinstance(value, float):
    # protobuf 3.20 hands a float field's default back as written (0.8), upb as the
    # float32 it is stored as (0.800000011920929); a message holds the float32 in both.
    value = struct.unpack("<f", struct.pack("<f", value))[0]
  return repr(value)


def _field(field, label: int) -> dict:
  return {
    "name": field.name,
    "number": field.number,
    "type": field.type,
    "cpp_type": field.cpp_type,
    "label": _LABELS[label],
    "has_default_value": field.has_default_value,
    "default_value": _default(field),
    "message_type": field.message_type.full_name if field.message_type else None,
    "enum_type": field.enum_type.full_name if field.enum_type else None,
    "oneof": field.containing_oneof.name if field.containing_oneof else None,
  }


def _enum(enum) -> dict:
  return {"values": [[v.name, v.number] for v in enum.values]}


def _message(descriptor, out: dict) -> None:
  from google.protobuf import descriptor_pb2

  proto = descriptor_pb2.DescriptorProto()
  descriptor.CopyToProto(proto)  # labels: FieldDescriptor.label is gone in protobuf 7
  labels = {f.name: f.label for f in proto.field}
  out[descriptor.full_name] = {
    "fields": [_field(f, labels[f.name]) for f in descriptor.fields],
    "nested_types": [n.full_name for n in descriptor.nested_types],
    "enum_types": {e.full_name: _enum(e) for e in descriptor.enum_types},
    "oneofs": {o.name: [f.name for f in o.fields] for o in descriptor.oneofs},
    "extension_ranges": [list(r) for r in descriptor.extension_ranges],
  }
  for nested in descriptor.nested_types:
    _message(nested, out)


def _attribute(value) -> str | None:
  from google.protobuf import descriptor as descriptor_module
  from google.protobuf import message
  from google.protobuf.internal import enum_type_wrapper

  if isinstance(value, type) and issubclass(value, message.Message):
    return f"message {value.DESCRIPTOR.full_name}"
  if isinstance(value, enum_type_wrapper.EnumTypeWrapper):
    return f"enum {value.DESCRIPTOR.full_name} {sorted(value.items())}"
  if isinstance(value, descriptor_module.FileDescriptor):
    return f"file {value.name}"
  if isinstance(value, descriptor_module.Descriptor | descriptor_module.EnumDescriptor):
    return f"{type(value).__name__.split('.')[-1]} {value.full_name}"
  if isinstance(value, descriptor_module.FieldDescriptor):
    return f"field {value.full_name}"
  if isinstance(value, int) and not isinstance(value, bool):
    return f"int {value}"
  return None


def dump_module(name: str) -> dict:
  module = importlib.import_module(name)
  attributes = {}
  for key, value in vars(module).items():
    if key.startswith("__") or isinstance(value, types.ModuleType):
      continue
    kind = _attribute(value)
    if kind is not None:
      attributes[key] = kind
  file = module.DESCRIPTOR
  messages: dict = {}
  for descriptor in file.message_types_by_name.values():
    _message(descriptor, messages)
  return {
    "file": file.name,
    "package": file.package,
    "dependencies": [d.name for d in file.dependencies],
    "attributes": dict(sorted(attributes.items())),
    "messages": messages,
    "enums": {e.full_name: _enum(e) for e in file.enum_types_by_name.values()},
  }


def config_digests(path: pathlib.Path) -> dict:
  """A pipeline.config parsed with the OD API's pipeline_pb2: sha256 of the
  file, of the message serialized deterministically, of its text format (or
  the parse error, for the zoo's configs that do not parse as published)."""
  from google.protobuf import text_format
  from object_detection.protos import pipeline_pb2

  data = path.read_bytes()
  config = pipeline_pb2.TrainEvalPipelineConfig()
  try:
    text_format.Merge(data.decode("utf-8"), config)
  except text_format.ParseError as e:  # some are published unparseable (PATH_TO_BE_CONFIGURED)
    return {"file_sha256": hashlib.sha256(data).hexdigest(), "parse_error": str(e)}
  return {
    "file_sha256": hashlib.sha256(data).hexdigest(),
    "serialized_sha256": hashlib.sha256(config.SerializeToString(deterministic=True)).hexdigest(),
    "text_sha256": hashlib.sha256(text_format.MessageToString(config).encode()).hexdigest(),
  }
