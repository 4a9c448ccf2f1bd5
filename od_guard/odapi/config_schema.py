"""Where the schema of a pipeline.config comes from, in this environment.

Three routes, chosen by what is installed (`load`):

* `GENERATED`: the OD API's own generated modules (`object_detection.protos.
  pipeline_pb2`), where the running protobuf accepts them: protobuf 3.x, the
  pure-Python implementation, or protos regenerated with protoc >= 3.20. Their
  messages are the ones the OD API's model builder takes.
* `DESCRIPTORS`: the package ships protoc-3 generated modules, which protobuf
  >= 4 (upb, C++) refuses to import ("Descriptors cannot be created
  directly"). Every such module carries its .proto as a serialized
  FileDescriptorProto: read as text and decoded with `ast` (never executed),
  those build the same message classes in a descriptor pool of the running
  protobuf. Same fields, same parser, same errors; only the OD API's model
  builder will not take them.
* `NONE`: the OD API is not installed; `config_text` reads the text format and
  types the fields the preflight needs.

The package is found with `importlib.util.find_spec`, which runs none of its
code. OD_GUARD_CONFIG_SCHEMA=generated|descriptors|none forces a route (for
tests, and to compare routes); `auto` (the default) picks as above.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import importlib
import importlib.util
import os
import pathlib
import re
import sys

from od_guard import errors

GENERATED, DESCRIPTORS, NONE, AUTO = "generated", "descriptors", "none", "auto"
ROUTES = (GENERATED, DESCRIPTORS, NONE)
ENV = "OD_GUARD_CONFIG_SCHEMA"
PIPELINE_PROTO = "object_detection/protos/pipeline.proto"
PIPELINE_MESSAGE = "object_detection.protos.TrainEvalPipelineConfig"
_INSTALL = "pip install tf-models-research-object-detection==2.8.0.post1 protobuf==3.20.3"


class OdApiUnavailableError(errors.OdGuardError):
  """The Object Detection API cannot be imported in this environment."""


class SchemaUnreadableError(Exception):
  """The OD API's generated modules hold no readable descriptor (internal:
  `load` falls back to the next route and says why)."""


@dataclasses.dataclass(frozen=True)
class Schema:
  """The schema a pipeline.config is parsed with.

  Attributes:
    route: GENERATED, DESCRIPTORS or NONE.
    message_class: TrainEvalPipelineConfig (None for NONE).
    source: where it comes from, in words (for reports and --version).
  """

  route: str
  message_class: type | None
  source: str


def protobuf_description() -> str:
  """'7.36.2 (upb)': the running protobuf's version and implementation."""
  import google.protobuf
  from google.protobuf.internal import api_implementation

  return f"{google.protobuf.__version__} ({api_implementation.Type()})"


def protos_dir() -> pathlib.Path | None:
  """object_detection/protos of the installed OD API, found without running
  any of its code; None when the OD API is not installed."""
  try:
    spec = importlib.util.find_spec("object_detection")
  except (ImportError, ValueError):
    return None
  for location in (spec.submodule_search_locations or []) if spec else []:
    candidate = pathlib.Path(location) / "protos"
    if (candidate / "pipeline_pb2.py").is_file():
      return candidate
  return None


def protos_hooked() -> bool:
  """Whether od_guard's compat layer builds the OD API's *_pb2 modules from
  their descriptors in this process (`od_guard.odapi.compat.install()`; its
  import hook says so, so that this module need not import the layer)."""
  return any(getattr(finder, "builds_odapi_protos", False) for finder in sys.meta_path)


def generated_modules_load(directory: pathlib.Path) -> bool:
  """Whether importing the OD API's *_pb2 modules works in this process,
  judged without importing them: through od_guard's compat layer where it is
  installed (`protos_hooked`), else as `protoc3_modules_load` says."""
  return protos_hooked() or protoc3_modules_load(directory)


def protoc3_modules_load(directory: pathlib.Path) -> bool:
  """Whether the OD API's *_pb2 files themselves load under this protobuf:
  protoc-3 output (descriptors built one by one with
  `_descriptor.Descriptor(...)`) loads only under protobuf 3.x or the
  pure-Python implementation; protoc >= 3.20 output (`AddSerializedFile`)
  loads everywhere."""
  import google.protobuf
  from google.protobuf.internal import api_implementation

  major = int(google.protobuf.__version__.split(".")[0])
  if major < 4 or api_implementation.Type() == "python":
    return True
  return "AddSerializedFile(" in (directory / "pipeline_pb2.py").read_text(encoding="utf-8")


# The serialized FileDescriptorProto as protoc writes it: a keyword of
# FileDescriptor(...) (protoc 3.0-3.19), or AddSerializedFile's argument.
_LITERAL = re.compile(
  r"(?:\bserialized_pb\s*=\s*|\.AddSerializedFile\(\s*)(?:_b\(\s*)?(?=[bB]?['\"])"
)


def _literal_at(source: str, start: int) -> str | None:
  """The one-line string literal starting at `start`, if it stands alone (no
  implicit concatenation follows)."""
  quote_at = start + (source[start] in "bB")
  quote = source[quote_at]
  i = quote_at + 1
  while i < len(source) and source[i] not in (quote, "\n"):
    i += 2 if source[i] == "\\" else 1
  if i >= len(source) or source[i] != quote or source[quote_at : quote_at + 3] == quote * 3:
    return None
  rest = source[i + 1 : i + 80].lstrip()
  return source[start : i + 1] if rest[:1] in (",", ")") else None


def _as_bytes(value: object) -> bytes:
  if isinstance(value, bytes):
    return value
  if isinstance(value, str):  # protoc 3.0-3.5: _b('...'), a latin-1 str
    return value.encode("latin-1")
  raise SchemaUnreadableError(f"a {type(value).__name__} where the descriptor bytes should be")


def serialized_descriptor(source: str, where: str) -> bytes:
  """The serialized FileDescriptorProto a generated *_pb2.py carries, decoded
  with `ast` from its source text; nothing in it is executed.

  Raises:
    SchemaUnreadableError: none, or more than one, found.
  """
  match = _LITERAL.search(source)
  literal = _literal_at(source, match.end()) if match else None
  if literal is not None and len(_LITERAL.findall(source)) == 1:
    return _as_bytes(ast.literal_eval(literal))
  return serialized_descriptor_from_ast(source, where)


def serialized_descriptor_from_ast(source: str, where: str) -> bytes:
  """As `serialized_descriptor`, by walking the whole module's syntax tree
  (slower; for generated code the quick scan does not recognise)."""
  found = []
  for node in ast.walk(ast.parse(source, filename=where)):
    if not isinstance(node, ast.Call):
      continue
    values = [k.value for k in node.keywords if k.arg == "serialized_pb"]
    if isinstance(node.func, ast.Attribute) and node.func.attr == "AddSerializedFile":
      values += node.args[:1]
    for value in values:
      if isinstance(value, ast.Call) and getattr(value.func, "id", "") == "_b" and value.args:
        value = value.args[0]
      try:
        found.append(_as_bytes(ast.literal_eval(value)))
      except ValueError as e:
        raise SchemaUnreadableError(f"{where}: the descriptor is not a literal ({e})") from e
  if len(found) != 1:
    raise SchemaUnreadableError(f"{where}: {len(found)} serialized descriptors, expected 1")
  return found[0]


def _file_descriptors(directory: pathlib.Path) -> dict:
  """proto file name -> FileDescriptorProto, for every *_pb2.py in `directory`."""
  from google.protobuf import descriptor_pb2

  out = {}
  for path in sorted(directory.glob("*_pb2.py")):
    data = serialized_descriptor(path.read_text(encoding="utf-8"), str(path))
    proto = descriptor_pb2.FileDescriptorProto.FromString(data)
    out[proto.name] = proto
  return out


def _well_known(name: str):
  """A google/protobuf/*.proto dependency, from the running protobuf."""
  from google.protobuf import descriptor_pb2

  if not name.startswith("google/protobuf/"):
    raise SchemaUnreadableError(f"the OD API's protos import {name}, which is not among them")
  module = importlib.import_module(
    "google.protobuf." + name.rsplit("/", 1)[1][: -len(".proto")] + "_pb2"
  )
  proto = descriptor_pb2.FileDescriptorProto()
  module.DESCRIPTOR.CopyToProto(proto)
  return proto


def message_class_from_descriptors(directory: pathlib.Path) -> type:
  """TrainEvalPipelineConfig, built in a fresh descriptor pool of the running
  protobuf from the serialized descriptors in `directory`'s *_pb2.py files.

  Raises:
    SchemaUnreadableError: the files hold no usable descriptors.
  """
  from google.protobuf import descriptor_pool
  from google.protobuf import message_factory

  files = _file_descriptors(directory)
  pool = descriptor_pool.DescriptorPool()
  added: set[str] = set()

  def add(name: str) -> None:
    if name in added:
      return
    proto = files[name] if name in files else _well_known(name)
    for dependency in proto.dependency:
      add(dependency)
    pool.AddSerializedFile(proto.SerializeToString())
    added.add(name)

  if PIPELINE_PROTO not in files:
    raise SchemaUnreadableError(f"no {PIPELINE_PROTO} among the descriptors in {directory}")
  try:
    add(PIPELINE_PROTO)
    descriptor = pool.FindMessageTypeByName(PIPELINE_MESSAGE)
  except (TypeError, KeyError) as e:  # conflicting or incomplete descriptors
    raise SchemaUnreadableError(f"{type(e).__name__}: {e}") from e
  get_class = getattr(message_factory, "GetMessageClass", None)  # protobuf >= 4.21
  if get_class is not None:
    return get_class(descriptor)
  return message_factory.MessageFactory(pool).GetPrototype(descriptor)


def _not_installed(cause: str) -> OdApiUnavailableError:
  return OdApiUnavailableError(
    "The TF2 Object Detection API is not installed here.",
    received=cause,
    fix=(
      f"Run od_guard in an environment with the OD API (`make env-odapi`, or `{_INSTALL}`); "
      "`od-guard check --static` works without it; `od-guard doctor` says what this one lacks."
    ),
  )


def refused_by_protobuf(directory: pathlib.Path) -> OdApiUnavailableError:
  """The error for a protoc-3 OD API under a protobuf that refuses it."""
  return OdApiUnavailableError(
    "The OD API's generated protos do not load under this protobuf.",
    received=(
      f"{directory}/*_pb2.py are protoc-3 generated; protobuf {protobuf_description()} refuses "
      "them on import (TypeError: Descriptors cannot be created directly)"
    ),
    fix=(
      "The package ships protoc-3 generated *_pb2.py files: install od_guard's compat layer "
      "first (od_guard.odapi.compat.install() before anything imports TensorFlow or the OD "
      "API; `od-guard doctor` says what else this stack needs), or pin protobuf==3.20.3 "
      "(TF <= 2.15). `od-guard check --static` works here (it reads their descriptors)."
    ),
  )


def _generated(directory: pathlib.Path) -> Schema:
  if not generated_modules_load(directory):
    raise refused_by_protobuf(directory)
  try:
    from object_detection.protos import pipeline_pb2  # protobuf only, never TensorFlow
  except (ImportError, TypeError) as e:
    raise OdApiUnavailableError(
      "The OD API's generated protos cannot be imported here.",
      received=f"{type(e).__name__}: {str(e).splitlines()[0]}",
      fix=f"Reinstall the OD API (`{_INSTALL}`); `od-guard doctor` says what this one lacks.",
    ) from e
  how = (
    "the OD API's protos, built from their descriptors by od_guard's compat layer"
    if protos_hooked() and not protoc3_modules_load(directory)
    else "the OD API's generated protos"
  )
  return Schema(
    GENERATED, pipeline_pb2.TrainEvalPipelineConfig, f"{how} (protobuf {protobuf_description()})"
  )


@functools.cache
def _descriptors_class(directory: pathlib.Path) -> type:
  # One pool per process: a fresh pool per parse would hold the same classes.
  return message_class_from_descriptors(directory)


def _descriptors(directory: pathlib.Path) -> Schema:
  cls = _descriptors_class(directory)
  return Schema(
    DESCRIPTORS,
    cls,
    f"the OD API's descriptors from {directory}, in protobuf {protobuf_description()}'s own pool",
  )


def _schema_free(why: str) -> Schema:
  return Schema(NONE, None, why)


def requested_route(route: str = AUTO) -> str:
  """`route`, or the one OD_GUARD_CONFIG_SCHEMA names when `route` is AUTO.

  Raises:
    UsageError: `route`, or OD_GUARD_CONFIG_SCHEMA, names no route.
  """
  if route != AUTO:
    if route not in ROUTES:
      raise errors.UsageError(
        f"{route!r} is not a schema route.",
        received=f"route={route!r}",
        fix=f"Pass one of {', '.join((AUTO, *ROUTES))}.",
      )
    return route
  value = os.environ.get(ENV, AUTO).strip().lower() or AUTO
  if value not in (*ROUTES, AUTO):
    raise errors.UsageError(
      f"{ENV} names no schema route.",
      received=f"{ENV}={os.environ.get(ENV)!r}",
      fix=f"Set it to one of {', '.join((AUTO, *ROUTES))}, or unset it.",
    )
  return value


def load(route: str = AUTO) -> Schema:
  """The schema to parse pipeline.config with (see the module docstring).

  Args:
    route: AUTO (the best this environment has, unless OD_GUARD_CONFIG_SCHEMA
      names one), or one of ROUTES to insist on.

  Raises:
    OdApiUnavailableError: a route was insisted on that this environment lacks.
    UsageError: `route`, or OD_GUARD_CONFIG_SCHEMA, is not a route.
  """
  route = requested_route(route)
  if route == NONE:
    return _schema_free("schema-free reading was requested")
  directory = protos_dir()
  if directory is None:
    if route != AUTO:
      raise _not_installed("importlib.util.find_spec('object_detection') found no package")
    return _schema_free("the OD API is not installed; od_guard types the fields it reads")
  if route == GENERATED:
    return _generated(directory)
  if route == DESCRIPTORS:
    try:
      return _descriptors(directory)
    except SchemaUnreadableError as e:
      raise OdApiUnavailableError(
        "The OD API's protos hold no readable descriptors.",
        received=str(e),
        fix=f"Reinstall the OD API (`{_INSTALL}`).",
      ) from e
  if generated_modules_load(directory):
    try:
      return _generated(directory)
    except OdApiUnavailableError:
      pass  # a damaged install: its descriptors may still be readable
  try:
    return _descriptors(directory)
  except SchemaUnreadableError as e:
    return _schema_free(f"the OD API's protos in {directory} could not be read ({e})")
