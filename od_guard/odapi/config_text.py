"""Reads a pipeline.config without the OD API's schema.

Where the OD API is not installed at all, `od-guard check --static` still reads
the fields the preflight needs. The text is parsed into a tree of fields whose
types are unknown (protobuf's text format: `name: value`, `name { ... }`,
`name < ... >`, `name: [a, b]`, comments, adjacent strings, extensions);
`PARTIAL_SCHEMA` then types the few fields the preflight reads, with the types
and defaults the OD API's protos declare. `parse` returns a `Node` that answers
like the generated message does for those fields (attributes, `HasField`,
`WhichOneof`), so `config.read` has one code path for every route.

Every other field is kept unchecked: a misspelt or unknown field name goes
unnoticed here, and the preflight report says so. Values are converted with
protobuf's own text-format functions, so numbers, booleans and escapes mean
what they mean to the OD API.
"""

from __future__ import annotations

from collections.abc import Iterator
import dataclasses
import re

from google.protobuf import text_encoding
from google.protobuf import text_format

# Protobuf's own token classes (google/protobuf/text_format.py, Tokenizer).
# Runs of plain characters are matched as one step (`[^...]+`), not one
# repetition of a group per character: Python's `re` keeps state for each
# repetition of a group, which took gigabytes for a 15 MB string. No
# alternative can fail after a run, so the runs never backtrack.
_SPACE = re.compile(r"(?:\s+|#.*$)+", re.MULTILINE)
_TOKEN = re.compile(
  r"[a-zA-Z_][0-9a-zA-Z_+-]*"  # identifier
  r"|(?:[0-9+-]|\.[0-9])[0-9a-zA-Z_.+-]*"  # number
  r"|\"(?:[^\"\n\\]+|\\.)*(\"|\\?$)"  # string; group 1: its closing quote
  r"|'(?:[^'\n\\]+|\\.)*('|\\?$)",  # group 2
  re.MULTILINE,
)
IDENTIFIER, NUMBER, STRING, SYMBOL = "identifier", "number", "string", "symbol"
PLACEHOLDER = "PATH_TO_BE_CONFIGURED"  # the zoo configs' stand-in for the user's paths


class TextFormatError(ValueError):
  """The text is not protobuf text format, or a field the preflight reads
  has a value of the wrong type. Printed as protobuf prints its ParseError."""

  def __init__(self, message: str, line: int, column: int, source: str = ""):
    self.message = message
    self.line = line
    self.column = column
    self.source = source
    where = f"{line}:{column} : " + (f"{source!r}: " if source else "")
    super().__init__(where + message)

  def quoting(self, text: str) -> TextFormatError:
    """The same error, quoting its line of `text` as protobuf's parser does."""
    lines = text.split("\n")
    source = lines[self.line - 1] if 0 < self.line <= len(lines) else ""
    return TextFormatError(self.message, self.line, self.column, source)


@dataclasses.dataclass(frozen=True)
class Token:
  kind: str
  text: str
  line: int  # 1-based, as protobuf's errors count
  column: int


@dataclasses.dataclass(frozen=True)
class Scalar:
  """A value as written: `text` is a string's decoded value, else the token."""

  kind: str
  text: str
  line: int
  column: int


@dataclasses.dataclass(frozen=True)
class Field:
  name: str  # an extension or Any type URL keeps its brackets: "[a.b.c]"
  value: Scalar | Message
  line: int
  column: int
  in_list: bool = False  # written as one element of `name: [a, b]`


@dataclasses.dataclass(frozen=True)
class Message:
  fields: tuple[Field, ...]

  def walk(self, prefix: str = "") -> Iterator[tuple[str, Field]]:
    """Every field in document order, with its dotted path."""
    for f in self.fields:
      path = f"{prefix}{f.name}"
      yield path, f
      if isinstance(f.value, Message):
        yield from f.value.walk(path + ".")


def _tokens(text: str) -> list[Token]:
  out = []
  for number, line in enumerate(text.split("\n"), start=1):
    pos = 0
    while True:
      space = _SPACE.match(line, pos)
      if space:
        pos = space.end()
      if pos >= len(line):
        break
      m = _TOKEN.match(line, pos)
      if m is None:
        out.append(Token(SYMBOL, line[pos], number, pos + 1))
        pos += 1
        continue
      word = m.group(0)
      kind = IDENTIFIER if word[0].isalpha() or word[0] == "_" else NUMBER
      if word[0] in "\"'":
        kind = STRING
        if not (m.group(1) or m.group(2) or "").startswith(word[0]):
          raise TextFormatError(f"String missing ending quote: {word!r}", number, pos + 1)
      out.append(Token(kind, word, number, pos + 1))
      pos = m.end()
  return out


class _Parser:
  """Recursive descent over the tokens into `Message` trees."""

  def __init__(self, text: str):
    self.tokens = _tokens(text)
    self.i = 0
    last = text.split("\n")
    self.end = (len(last), max(len(last[-1]), 1))  # where protobuf's parser says

  def peek(self) -> Token | None:
    return self.tokens[self.i] if self.i < len(self.tokens) else None

  def error(self, message: str, token: Token | None = None) -> TextFormatError:
    token = token or self.peek()
    line, column = (token.line, token.column) if token else self.end
    return TextFormatError(message, line, column)

  def take(self, symbol: str) -> bool:
    token = self.peek()
    if token is not None and token.kind == SYMBOL and token.text == symbol:
      self.i += 1
      return True
    return False

  def expect(self, symbol: str) -> None:
    if not self.take(symbol):
      found = self.peek()
      raise self.error(f'Expected "{symbol}"' + (f", found {found.text!r}." if found else "."))

  def message(self, close: str | None) -> Message:
    fields = []
    while True:
      if close is None and self.peek() is None:
        return Message(tuple(fields))
      if close is not None and self.take(close):
        return Message(tuple(fields))
      if self.peek() is None:
        raise self.error(f'Expected "{close}".')
      fields.extend(self.field())
      if not self.take(","):
        self.take(";")

  def field(self) -> list[Field]:
    start = self.peek()
    name = self.field_name()
    colon = self.take(":")
    if self.take("["):
      values = [] if self.take("]") else self.list_values()
      return [Field(name, v, start.line, start.column, in_list=True) for v in values]
    opener = self.peek()
    if opener is not None and opener.kind == SYMBOL and opener.text in "{<":
      return [Field(name, self.nested(), start.line, start.column)]
    if not colon:
      raise self.error(f'Expected ":" after {name}.')
    return [Field(name, self.scalar(), start.line, start.column)]

  def field_name(self) -> str:
    token = self.peek()
    if token is not None and token.kind == IDENTIFIER:
      self.i += 1
      return token.text
    if self.take("["):  # [package.extension] or [type.googleapis.com/package.Type]
      parts = []
      while not self.take("]"):
        part = self.peek()
        if part is None or part.kind == STRING or part.text in "{}<>[:":
          raise self.error('Expected "]" closing the extension name.')
        parts.append(part.text)
        self.i += 1
      return "[" + "".join(parts) + "]"
    raise self.error(
      f"Expected identifier, found {token.text!r}." if token else "Expected identifier."
    )

  def nested(self) -> Message:
    opener = self.peek()
    self.i += 1
    return self.message("}" if opener.text == "{" else ">")

  def list_values(self) -> list[Scalar | Message]:
    values = []
    while True:
      opener = self.peek()
      if opener is not None and opener.kind == SYMBOL and opener.text in "{<":
        values.append(self.nested())
      else:
        values.append(self.scalar())
      if self.take("]"):
        return values
      self.expect(",")

  def scalar(self) -> Scalar:
    token = self.peek()
    if token is None or token.kind == SYMBOL:
      raise self.error(f"Expected a value, found {token.text!r}." if token else "Expected a value.")
    self.i += 1
    if token.kind != STRING:
      return Scalar(token.kind, token.text, token.line, token.column)
    raw = [token.text[1:-1]]
    while (more := self.peek()) is not None and more.kind == STRING:  # "a" "b" is "ab"
      raw.append(more.text[1:-1])
      self.i += 1
    try:
      value = text_encoding.CUnescape("".join(raw)).decode("utf-8")
    except (ValueError, UnicodeDecodeError) as e:
      raise self.error(f"Invalid string: {e}", token) from e
    return Scalar(STRING, value, token.line, token.column)


def parse_tree(text: str) -> Message:
  """The text format's tree, no types attached.

  Raises:
    TextFormatError: the text is not protobuf text format.
  """
  return _Parser(text).message(None)


# The part of the OD API's schema the preflight reads (object_detection/protos
# of tf-models-research-object-detection 2.8): for each message, its fields'
# types and the defaults its .proto declares. tests/static_config_test.py checks
# every entry against the OD API's own descriptors wherever they are installed.
@dataclasses.dataclass(frozen=True)
class FieldType:
  kind: str  # "message", "int32", "float", "bool", "string" or "enum"
  default: object = None
  message: str = ""  # for "message": a key of PARTIAL_SCHEMA; for "enum": the enum's name
  enum: tuple[tuple[str, int], ...] = ()  # for "enum": (name, number)


def _message(name: str) -> FieldType:
  return FieldType("message", message=name)


_RESIZER = _message("ImageResizer")
CHECKPOINT_VERSIONS = (("UNKNOWN", 0), ("V1", 1), ("V2", 2))
PACKAGE = "object_detection.protos"
PARTIAL_SCHEMA: dict[str, dict[str, FieldType]] = {
  "TrainEvalPipelineConfig": {
    "model": _message("DetectionModel"),
    "train_config": _message("TrainConfig"),
  },
  "DetectionModel": {
    "faster_rcnn": _message("FasterRcnn"),
    "ssd": _message("Ssd"),
    "experimental_model": _message("ExperimentalModel"),
    "center_net": _message("CenterNet"),
  },
  "Ssd": {
    "num_classes": FieldType("int32", 0),
    "image_resizer": _RESIZER,
    "feature_extractor": _message("SsdFeatureExtractor"),
    "add_background_class": FieldType("bool", True),
  },
  "SsdFeatureExtractor": {
    "type": FieldType("string", ""),
    "depth_multiplier": FieldType("float", 1.0),
    "use_depthwise": FieldType("bool", False),
  },
  "FasterRcnn": {
    "num_classes": FieldType("int32", 0),
    "image_resizer": _RESIZER,
    "feature_extractor": _message("FasterRcnnFeatureExtractor"),
  },
  "FasterRcnnFeatureExtractor": {"type": FieldType("string", "")},
  "CenterNet": {
    "num_classes": FieldType("int32", 0),
    "feature_extractor": _message("CenterNetFeatureExtractor"),
    "image_resizer": _RESIZER,
  },
  "CenterNetFeatureExtractor": {
    "type": FieldType("string", ""),
    "use_depthwise": FieldType("bool", False),
    "depth_multiplier": FieldType("float", 1.0),
  },
  "ExperimentalModel": {},
  "ImageResizer": {
    "keep_aspect_ratio_resizer": _message("KeepAspectRatioResizer"),
    "fixed_shape_resizer": _message("FixedShapeResizer"),
    "identity_resizer": _message("IdentityResizer"),
    "conditional_shape_resizer": _message("ConditionalShapeResizer"),
    "pad_to_multiple_resizer": _message("PadToMultipleResizer"),
  },
  "KeepAspectRatioResizer": {
    "min_dimension": FieldType("int32", 600),
    "max_dimension": FieldType("int32", 1024),
  },
  "FixedShapeResizer": {"height": FieldType("int32", 300), "width": FieldType("int32", 300)},
  "IdentityResizer": {},
  "ConditionalShapeResizer": {},
  "PadToMultipleResizer": {},
  "TrainConfig": {
    "fine_tune_checkpoint": FieldType("string", ""),
    "fine_tune_checkpoint_type": FieldType("string", ""),
    "from_detection_checkpoint": FieldType("bool", False),
    "use_bfloat16": FieldType("bool", False),
    "fine_tune_checkpoint_version": FieldType(
      "enum", 1, message="CheckpointVersion", enum=CHECKPOINT_VERSIONS
    ),
    "run_fine_tune_checkpoint_dummy_computation": FieldType("bool", True),
  },
}
ONEOFS: dict[str, dict[str, tuple[str, ...]]] = {
  "DetectionModel": {"model": tuple(PARTIAL_SCHEMA["DetectionModel"])},
  "ImageResizer": {"image_resizer_oneof": tuple(PARTIAL_SCHEMA["ImageResizer"])},
}
_INT32 = (-(2**31), 2**31 - 1)


def _convert(field: FieldType, value: Scalar):
  def error(message: str) -> TextFormatError:
    return TextFormatError(message, value.line, value.column)

  if field.kind == "string":
    if value.kind != STRING:
      raise error(f"Expected string but found: {value.text!r}")
    return value.text
  # A string where a number belongs is quoted in the message, as protobuf does.
  text = f'"{value.text}"' if value.kind == STRING else value.text
  try:
    if field.kind == "int32":
      return text_format.ParseInteger(text, is_signed=True, is_long=False)
    if field.kind == "float":
      return text_format.ParseFloat(text)
    if field.kind == "bool":
      return text_format.ParseBool(text)
  except ValueError as e:
    raise error(str(e)) from e
  numbers = dict(field.enum)
  if value.kind != STRING and value.text in numbers:
    return numbers[value.text]
  if (
    value.kind == NUMBER
    and value.text.lstrip("-").isdigit()
    and int(value.text) in numbers.values()
  ):
    return int(value.text)
  raise error(f'Enum type "{PACKAGE}.{field.message}" has no value named {text}.')


class Node:
  """A message of `PARTIAL_SCHEMA` over the parsed tree, answering as a
  generated message would for the fields the schema knows: attributes give
  typed values or defaults (repeated occurrences merge, the last scalar wins,
  as protobuf's `text_format.Merge` does); other names raise AttributeError."""

  def __init__(self, type_name: str, messages: tuple[Message, ...] = ()):
    self._type = type_name
    self._messages = messages

  @property
  def messages(self) -> tuple[Message, ...]:
    """The parsed messages this node reads (the whole tree, at the root)."""
    return self._messages

  @property
  def type_name(self) -> str:
    """Its message's name in PARTIAL_SCHEMA (e.g. 'TrainConfig')."""
    return self._type

  def _fields(self, name: str) -> list[Field]:
    return [f for m in self._messages for f in m.fields if f.name == name]

  def __getattr__(self, name: str):
    schema = PARTIAL_SCHEMA[self._type]
    if name.startswith("_") or name not in schema:
      raise AttributeError(f"{self._type} has no field {name!r} od_guard reads without a schema")
    field = schema[name]
    found = self._fields(name)
    for f in found:
      if f.in_list:
        raise TextFormatError(f"{name} is not a repeated field; write it once.", f.line, f.column)
      if isinstance(f.value, Message) != (field.kind == "message"):
        want = "a message { ... }" if field.kind == "message" else f"a {field.kind} value"
        raise TextFormatError(f"{name} takes {want}.", f.line, f.column)
    if field.kind == "message":
      return Node(field.message, tuple(f.value for f in found))
    if not found:
      return field.default
    return _convert(field, found[-1].value)

  def HasField(self, name: str) -> bool:
    if name in ONEOFS.get(self._type, {}):
      return self.WhichOneof(name) is not None
    return bool(self._fields(name))

  def WhichOneof(self, oneof: str) -> str | None:
    members = ONEOFS.get(self._type, {}).get(oneof, ())
    present = [f.name for m in self._messages for f in m.fields if f.name in members]
    return present[-1] if present else None

  def validate(self) -> None:
    """Converts every field the schema knows, recursively, so that a wrong
    value raises here and not when the field is first read."""
    for name, field in PARTIAL_SCHEMA[self._type].items():
      value = getattr(self, name)
      if field.kind == "message" and value._messages:
        value.validate()


def parse(text: str) -> Node:
  """Parses a pipeline.config into a TrainEvalPipelineConfig `Node`.

  Raises:
    TextFormatError: the text is not protobuf text format; it uses an
      extension (the public OD API defines none, so its own parser rejects
      every one); it holds an unquoted PATH_TO_BE_CONFIGURED (no enum value
      of the OD API is one: a string left unquoted, which its parser rejects);
      or a field the preflight reads holds a value of the wrong type.
  """
  try:
    return _parse(text)
  except TextFormatError as e:
    raise e.quoting(text) from None


def _parse(text: str) -> Node:
  tree = parse_tree(text)
  for _, field in tree.walk():
    if field.name.startswith("["):
      raise TextFormatError(
        f'Extension "{field.name[1:-1]}" not registered: the public OD API\'s protos '
        "define no extensions.",
        field.line,
        field.column,
      )
    value = field.value
    if isinstance(value, Scalar) and value.kind == IDENTIFIER and PLACEHOLDER in value.text:
      raise TextFormatError(f"Expected string but found: {value.text!r}", value.line, value.column)
  root = Node("TrainEvalPipelineConfig", (tree,))
  root.validate()
  return root


def enum_name(field: FieldType, number: int) -> str:
  return next((name for name, n in field.enum if n == number), str(number))
