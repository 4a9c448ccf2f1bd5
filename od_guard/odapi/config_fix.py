"""`od-guard fix`: the machine-applicable fixes of a check, applied to the
pipeline.config's text.

Each finding of a check proposes its edits (`edits_for`): a field path, the
value as written and the new value (None: the field is dropped), or the
reason it has none. Only fixes that need no guess are edits: a checkpoint path
only when the check found exactly one candidate (`data["proposed"]`) or
derived it from the path itself (a file suffix dropped, the prefix inside a
directory, the path beside the config made absolute).

`apply` edits the text in place: it replaces the value's token (or drops the
field's line) and leaves every other byte as it was (comments, order,
indentation, CRLF line ends, a byte order mark). A field written more than
once, or not written at all, is not edited (the edit says why).

`write` replaces the file atomically (a temporary file beside it, fsync,
rename), keeps the original as ``<file>.bak``, and refuses a symbolic link and
a file that changed since it was read.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import itertools
import os
import re
import stat

from od_guard import _files
from od_guard import errors
from od_guard.odapi import config_inputs
from od_guard.odapi import config_text
from od_guard.restore import findings as findings_lib

Finding = findings_lib.Finding
_CHECKPOINT = "train_config.fine_tune_checkpoint"
_QUOTED_FIX = re.compile(r'fine_tune_checkpoint: "(?P<value>[^"]+)"$')
_PREFIX_FIX = re.compile(r'e\.g\. "(?P<value>[^"]+)" \(the files are')
_TYPE_FIX = re.compile(r'^Set fine_tune_checkpoint_type: "(?P<value>\w+)"$')
_STRING_FIELDS = frozenset({"fine_tune_checkpoint_type", "fine_tune_checkpoint"})
_BARE = re.compile(r"[^\s{}<>\[\]:,;#\"']+")


class FixError(errors.UsageError):
  """The config cannot be fixed in place (a link, changed meanwhile, not writable)."""


@dataclasses.dataclass(frozen=True)
class Edit:
  """One change to the config.

  Attributes:
    field: the dotted field path, e.g. "train_config.fine_tune_checkpoint_type".
    old: the value as the check saw it ('' when not known).
    new: the new value (None: drop the field).
    code: the finding that proposed it.
    after: when the field is not written: the sibling field it is added after
      (its own line, indented as that one; '' : not added).
  """

  field: str
  old: str
  new: str | None
  code: str
  after: str = ""

  def to_dict(self) -> dict:
    return dataclasses.asdict(self)


def edits_for(finding: Finding, config) -> tuple[list[Edit], str]:
  """The edits `finding` proposes for `config` (a FineTuneConfig), and, when
  there are none, why (else '')."""
  code, data, fix = finding.code, finding.data, finding.fix
  value = config.fine_tune_checkpoint
  if code in ("checkpoint_not_found", "checkpoint_subdir_missing", "tf1_checkpoint_name") or (
    code == "windows_path_separator"
  ):
    if data.get("proposed"):
      return [Edit(_CHECKPOINT, value, data["proposed"], code)], ""
    return [], "no single checkpoint was found near the path: not guessed"
  if code == "checkpoint_path_is_file" or (
    code == "relative_checkpoint_path" and finding.severity == findings_lib.ERROR
  ):
    m = _QUOTED_FIX.search(fix)
    if m:
      return [Edit(_CHECKPOINT, value, m["value"], code)], ""
  if code == "checkpoint_path_is_directory":
    m = _PREFIX_FIX.search(fix)
    if m:
      return [Edit(_CHECKPOINT, value, m["value"], code)], ""
    return [], "no checkpoint prefix inside the directory: not guessed"
  if code == "checkpoint_type_mismatch":
    m = _TYPE_FIX.match(fix)
    if m:
      field = "train_config.fine_tune_checkpoint_type"
      return [Edit(field, config.fine_tune_checkpoint_type, m["value"], code, _CHECKPOINT)], ""
    return [], "no single checkpoint type is named: not guessed"
  if code == "tf1_feature_extractor" and data.get("tf2_type"):
    field = f"model.{config.meta_architecture}.feature_extractor.type"
    return [Edit(field, config.feature_extractor_type, data["tf2_type"], code)], ""
  if code == "tf1_config_field" and data.get("field") in config_inputs.TF1_TRAIN_FIELDS:
    if data["field"] == "from_detection_checkpoint" and not config.fine_tune_checkpoint_type:
      return [], "it still decides the checkpoint type: set fine_tune_checkpoint_type first"
    return [Edit(f"train_config.{data['field']}", "", None, code)], ""
  if code == "label_map_num_classes_differ" and data.get("label_map_classes"):
    field = f"model.{config.meta_architecture}.num_classes"
    return [Edit(field, str(config.num_classes), str(data["label_map_classes"]), code)], ""
  if code == "checkpoint_version_v1":
    field = "train_config.fine_tune_checkpoint_version"
    return [Edit(field, config.fine_tune_checkpoint_version, "V2", code, _CHECKPOINT)], ""
  return [], "no machine-applicable fix"


def annotate(found: list[Finding], config) -> list[dict]:
  """Per finding: its proposed edits (``{"edits": [...]}``) or, for a warning
  or an error without any, why (``{"edits": [], "no_edit": "..."}``); facts get
  ``{"edits": []}``. For the JSON report, parallel to `found`."""
  out = []
  for f in found:
    edits, why = edits_for(f, config) if f.severity != findings_lib.INFO else ([], "")
    entry: dict = {"edits": [e.to_dict() for e in edits]}
    if not edits and why:
      entry["no_edit"] = why
    out.append(entry)
  return out


@dataclasses.dataclass(frozen=True)
class Plan:
  """What `fix` would do to one config.

  Attributes:
    path: the config.
    before: its text as read; after: the text with the edits applied.
    applied: the edits made; skipped: (edit or finding code, why) not made.
  """

  path: str
  before: str
  after: str
  applied: tuple[Edit, ...]
  skipped: tuple[tuple[str, str], ...]

  def diff(self) -> str:
    name = self.path
    return "".join(
      difflib.unified_diff(
        self.before.splitlines(keepends=True),
        self.after.splitlines(keepends=True),
        fromfile=f"a/{name}",
        tofile=f"b/{name}",
      )
    )

  def to_dict(self) -> dict:
    return {
      "path": self.path,
      "applied": [e.to_dict() for e in self.applied],
      "skipped": [{"what": w, "why": y} for w, y in self.skipped],
      "changed": self.before != self.after,
    }


def _offsets(text: str) -> list[int]:
  """The offset of each line's start (lines split at \\n, as the parser counts)."""
  out, pos = [0], 0
  for line in text.split("\n")[:-1]:
    pos += len(line) + 1
    out.append(pos)
  return out


def _token_end(text: str, start: int) -> int:
  """The end of the value token that starts at `start`."""
  quote = text[start]
  if quote in "\"'":
    i = start + 1
    while i < len(text) and text[i] != quote:
      i += 2 if text[i] == "\\" else 1
    return i + 1
  m = _BARE.match(text, start)
  return m.end() if m else start


def _quote(value: str, like: str) -> str:
  if like[:1] in "\"'":
    q = like[0]
    return q + value.replace("\\", "\\\\").replace(q, "\\" + q) + q
  return value


def apply(text: str, edits: list[Edit]) -> tuple[str, list[Edit], list[tuple[str, str]]]:
  """`text` with `edits` applied; every byte outside the edited tokens (or
  dropped lines) is kept. Returns (text, applied, skipped with why)."""
  tree = config_text.parse_tree(text)
  by_path: dict[str, list[config_text.Field]] = {}
  for path, field in tree.walk():
    by_path.setdefault(path, []).append(field)
  offsets = _offsets(text)
  spans: list[tuple[int, int, str, Edit]] = []
  applied, skipped = [], []
  for edit in edits:
    found = by_path.get(edit.field, [])
    anchor = by_path.get(edit.after, []) if edit.after else []
    if (
      not found
      and edit.new is not None
      and len(anchor) == 1
      and isinstance(anchor[0].value, config_text.Scalar)
    ):
      spans.append((*_insertion(text, offsets, edit, anchor[0]), edit))
      applied.append(edit)
      continue
    if len(found) != 1 or not isinstance(found[0].value, config_text.Scalar):
      why = "not written in the config" if not found else f"written {len(found)} times"
      if found and len(found) == 1:
        why = "not a single value"
      skipped.append((f"{edit.field} ({edit.code})", f"{why}: not edited"))
      continue
    field, value = found[0], found[0].value
    start = offsets[value.line - 1] + value.column - 1
    end = _token_end(text, start)
    if edit.new is None:  # drop the field: its line when nothing else is on it
      f_start = offsets[field.line - 1] + field.column - 1
      line_start = offsets[field.line - 1]
      line_end = text.find("\n", end)
      line_end = len(text) if line_end < 0 else line_end
      before, after = text[line_start:f_start], text[end:line_end]
      if field.line == value.line and not before.strip() and not after.strip(" \t\r"):
        spans.append((line_start, min(line_end + 1, len(text)), "", edit))
      else:
        spans.append((f_start, end, "", edit))
    else:
      spans.append((start, end, _quote(edit.new, text[start:end]), edit))
    applied.append(edit)
  spans.sort(key=lambda s: (s[0], s[1]))  # an insertion before what starts there
  for (_, end_a, _, a), (start_b, _, _, b) in itertools.pairwise(spans):
    if start_b < end_a:
      raise FixError(
        f"Two fixes edit the same text ({a.field} and {b.field}).",
        received=f"{a.code}, {b.code}",
        fix="Apply one by hand, then run od-guard fix again.",
      )
  out = text
  for start, end, new, _ in reversed(spans):
    out = out[:start] + new + out[end:]
  return out, applied, skipped


def _insertion(text: str, offsets: list[int], edit: Edit, anchor: config_text.Field):
  """(start, end, new text) adding `edit`'s field after the `anchor` field:
  on a line of its own, indented as the anchor, with the anchor line's ending
  (or after the anchor's value, when more follows it on its line)."""
  name = edit.field.rsplit(".", 1)[1]
  value = anchor.value
  start = offsets[value.line - 1] + value.column - 1
  end = _token_end(text, start)
  quoted = text[start] if text[start] in "\"'" else '"'  # the anchor's quotes
  written = f"{name}: " + (_quote(edit.new, quoted) if name in _STRING_FIELDS else edit.new)
  line_end = text.find("\n", end)
  rest = text[end : len(text) if line_end < 0 else line_end]
  if rest.strip(" \t\r") and not rest.lstrip(" \t").startswith("#"):
    return end, end, " " + written
  line_start = offsets[anchor.line - 1]
  indent = text[
    line_start : line_start + len(text[line_start:]) - len(text[line_start:].lstrip(" \t"))
  ]
  newline = "\r\n" if rest.endswith("\r") else "\n"
  at = len(text) if line_end < 0 else line_end + 1
  prefix = newline if line_end < 0 else ""
  return at, at, f"{prefix}{indent}{written}{newline}"


def plan(path: str, found: list[Finding], config) -> Plan:
  """The edits the findings propose, applied to the text of `path`."""
  raw = read(path)
  text = _decode(raw, path)
  edits, skipped = [], []
  for f in found:
    if f.severity == findings_lib.INFO:
      continue
    more, why = edits_for(f, config)
    if not more:
      skipped.append((f.code, why))
    for e in more:
      if all((e.field, e.new) != (x.field, x.new) for x in edits):
        edits.append(e)
  body = text[1:] if text.startswith("\ufeff") else text
  after, applied, not_applied = apply(body, edits)
  if body is not text:
    after = "\ufeff" + after
  return Plan(path, text, after, tuple(applied), tuple(skipped + not_applied))


def read(path: str) -> bytes:
  return _files.read_bytes(
    path, what="pipeline config", flag="--pipeline_config_path", limit=_files.CONFIG_LIMIT
  )


def _decode(raw: bytes, path: str) -> str:
  # Kept byte for byte: a BOM stays as U+FEFF, CRLF stays in the text.
  try:
    return raw.decode("utf-8")
  except UnicodeDecodeError:
    return _files.decode_utf8(raw, path, what="pipeline config")


def write(p: Plan, *, backup: bool = True) -> str:
  """Replaces the config with `p.after` atomically, keeping `<path>.bak`
  (unless `backup` is False: a later round of the same fix); returns the
  backup's path.

  Raises:
    FixError: the path is a symbolic link, read-only, the file changed since
      it was read, or it cannot be written.
  """
  path = p.path
  st = os.lstat(path)
  if stat.S_ISLNK(st.st_mode):
    raise FixError(
      f"{path!r} is a symbolic link: od-guard fix does not write through links.",
      received=f"{path} -> {os.readlink(path)}",
      fix=f"Run od-guard fix on the file itself: {os.path.realpath(path)}",
    )
  if not st.st_mode & 0o222 or not os.access(path, os.W_OK):  # root too: the mode says
    raise FixError(
      f"{path!r} is read-only: od-guard fix does not replace a file its owner protected.",
      received=f"{path} (mode {stat.filemode(st.st_mode)})",
      fix="Make it writable (chmod u+w) and run od-guard fix --write again, or apply the diff.",
    )
  if read(path) != p.before.encode("utf-8"):
    raise FixError(
      f"{path!r} changed since od-guard fix read it.",
      received=path,
      fix="Run od-guard fix again.",
    )
  mode = stat.S_IMODE(st.st_mode)
  backup_path = path + ".bak"
  try:
    if backup:
      _atomic(backup_path, p.before.encode("utf-8"), mode)
    _atomic(path, p.after.encode("utf-8"), mode, expect=(st.st_dev, st.st_ino))
  except OSError as e:
    raise FixError(
      f"Cannot write {path!r}: {e.strerror or e}.",
      received=path,
      fix="Check that the user running od_guard may write the config's directory.",
    ) from e
  return backup_path


def _atomic(path: str, data: bytes, mode: int, expect: tuple[int, int] | None = None) -> None:
  directory = os.path.dirname(os.path.abspath(path))
  tmp = os.path.join(directory, f".{os.path.basename(path)}.od_guard-fix.{os.getpid()}")
  fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), mode)
  try:
    view = memoryview(data)
    while view:
      view = view[os.write(fd, view) :]
    os.fsync(fd)
  finally:
    os.close(fd)
  try:
    if expect is not None:
      now = os.lstat(path)
      if (now.st_dev, now.st_ino) != expect or stat.S_ISLNK(now.st_mode):
        raise FixError(
          f"{path!r} was replaced while od-guard fix wrote it.",
          received=path,
          fix="Run od-guard fix again.",
        )
    os.replace(tmp, path)
  except BaseException:
    with contextlib.suppress(OSError):
      os.unlink(tmp)
    raise
  dfd = os.open(directory, os.O_RDONLY)
  try:
    os.fsync(dfd)
  finally:
    os.close(dfd)
