"""The project file: `[tool.od_guard]` in pyproject.toml (or `[tool:od_guard]`
in setup.cfg), found by walking up from the file checked, as ruff does.

    [tool.od_guard]
    policy = "default"                      # strict / default / lenient
    min_backbone_coverage = 0.9             # thresholds over the preset's
    min_neck_coverage = 0.5
    ignore = ["label_map_num_classes_differ"]
    select = []                             # when set: the only codes that decide
    naming_rules = "naming_rules.toml"      # `od-guard lint`'s rules (relative to this file)
    where = "repo"                          # `od-guard check --where`

The nearest directory (the file's own, then its parents) holding a
pyproject.toml with a `[tool.od_guard]` table, or else a setup.cfg with a
`[tool:od_guard]` section, gives the settings; pyproject.toml and setup.cfg
files without one are passed over. Options on the command line win over the
file; `--ignore` adds to its ignore list, `--select` replaces its select list.

Every file is read as the user files are (`od_guard._files`): a regular file
of at most `PROJECT_LIMIT` bytes, UTF-8, valid TOML / INI; anything else, and
any value of the wrong type or an unknown key, is a typed `ProjectConfigError`
naming the file, the key and the fix.
"""

from __future__ import annotations

import configparser
import contextlib
import dataclasses
import difflib
import os

from od_guard import _files
from od_guard import errors
from od_guard.restore import policy as policy_lib

PROJECT_LIMIT = 4 << 20  # a pyproject.toml / setup.cfg (real ones are a few KB)
TABLE = "tool.od_guard"
SETUP_CFG_SECTION = "tool:od_guard"
WHERE = ("training", "repo")
KEYS = (
  "policy",
  "min_backbone_coverage",
  "min_neck_coverage",
  "ignore",
  "select",
  "naming_rules",
  "where",
)


class ProjectConfigError(errors.UsageError):
  """The project file cannot be read, or its [tool.od_guard] settings are wrong."""


@dataclasses.dataclass(frozen=True)
class ProjectConfig:
  """The settings of one project file (all unset when there is none).

  Attributes:
    path: the file read ('' when none was found).
    policy: the preset's name (None: unset).
    min_backbone_coverage, min_neck_coverage: thresholds (None: the preset's).
    ignore: codes that never decide the verdict.
    select: the only codes that may (None: unset).
    naming_rules: the naming rules file, absolute (None: unset).
    where: "training" or "repo" (None: unset).
  """

  path: str = ""
  policy: str | None = None
  min_backbone_coverage: float | None = None
  min_neck_coverage: float | None = None
  ignore: frozenset[str] = frozenset()
  select: frozenset[str] | None = None
  naming_rules: str | None = None
  where: str | None = None

  def to_dict(self) -> dict:
    d = dataclasses.asdict(self)
    d["ignore"] = sorted(self.ignore)
    d["select"] = None if self.select is None else sorted(self.select)
    return d

  def to_policy(
    self,
    *,
    preset: str | None = None,
    min_backbone_coverage: float | None = None,
    ignore: frozenset[str] = frozenset(),
    select: frozenset[str] | None = None,
  ) -> policy_lib.Policy:
    """The policy of these settings under the command line's (which win:
    `ignore` adds to the file's, `select` replaces it)."""
    policy = policy_lib.preset(preset or self.policy or "default")
    changes: dict = {}
    backbone = min_backbone_coverage
    if backbone is None:
      backbone = self.min_backbone_coverage
    if backbone is not None:
      changes["min_backbone_coverage"] = backbone
    if self.min_neck_coverage is not None:
      changes["min_neck_coverage"] = self.min_neck_coverage
    if self.ignore or ignore:
      changes["ignore"] = self.ignore | ignore
    chosen = select if select is not None else self.select
    if chosen:
      changes["select"] = chosen
    return policy.replace(**changes) if changes else policy


def find(start: str | os.PathLike) -> str | None:
  """The nearest project file with od_guard settings, from `start` (a file or
  a directory) up to the filesystem's root; None when there is none.

  Raises:
    ProjectConfigError: a pyproject.toml or setup.cfg on the way cannot be
      read (not a regular file, too large, not UTF-8, not TOML / INI).
  """
  here = os.path.abspath(os.fspath(start))
  if not os.path.isdir(here):
    here = os.path.dirname(here)
  while True:
    for name, has_settings in (("pyproject.toml", _has_table), ("setup.cfg", _has_section)):
      candidate = os.path.join(here, name)
      if os.path.lexists(candidate) and has_settings(candidate):
        return candidate
    parent = os.path.dirname(here)
    if parent == here:
      return None
    here = parent


def discover(start: str | os.PathLike) -> ProjectConfig:
  """The settings of the nearest project file (`find`), or none."""
  path = find(start)
  return load(path) if path else ProjectConfig()


def load(path: str | os.PathLike) -> ProjectConfig:
  """The settings of the project file `path` (a pyproject.toml or a setup.cfg).

  Raises:
    ProjectConfigError: it cannot be read, or a setting is wrong.
  """
  path = os.fspath(path)
  if os.path.basename(path) == "setup.cfg":
    section = _read_setup_cfg(path)
    table = dict(section.items()) if section is not None else {}
    return _settings(path, table, ini=True)
  table = _read_pyproject(path).get("tool", {}).get("od_guard", {})
  return _settings(path, table, ini=False)


def _read_pyproject(path: str) -> dict:
  return _files.read_toml(
    path,
    what="project file",
    flag="the pyproject.toml od_guard found (walking up from the checked file)",
    limit=PROJECT_LIMIT,
    error=ProjectConfigError,
  )


def _read_setup_cfg(path: str) -> configparser.SectionProxy | None:
  text = _files.read_text(
    path,
    what="project file",
    flag="the setup.cfg od_guard found (walking up from the checked file)",
    limit=PROJECT_LIMIT,
    error=ProjectConfigError,
  )
  parser = configparser.ConfigParser(interpolation=None)
  try:
    parser.read_string(text, source=path)
  except configparser.Error as e:
    raise ProjectConfigError(
      f"The project file {path!r} is not valid INI: {str(e).splitlines()[0]}.",
      received=path,
      fix="Fix setup.cfg at the line named.",
    ) from e
  return parser[SETUP_CFG_SECTION] if parser.has_section(SETUP_CFG_SECTION) else None


def _has_table(path: str) -> bool:
  tool = _read_pyproject(path).get("tool")
  return isinstance(tool, dict) and "od_guard" in tool


def _has_section(path: str) -> bool:
  return _read_setup_cfg(path) is not None


def _wrong(path: str, key: str, value, expected: str, example: str) -> ProjectConfigError:
  return ProjectConfigError(
    f"[{TABLE}] {key} in {path!r} must be {expected}.",
    received=f"{key} = {value!r}"[:200],
    fix=f"e.g. {key} = {example}",
  )


def _settings(path: str, table, *, ini: bool) -> ProjectConfig:
  if not isinstance(table, dict):
    raise ProjectConfigError(
      f"[{TABLE}] in {path!r} must be a table.",
      received=f"{TABLE} = {table!r}"[:200],
      fix=f"Write it as a table: [{TABLE}] on its own line, then key = value lines.",
    )
  for key in table:
    if key not in KEYS:
      close = difflib.get_close_matches(str(key), KEYS, n=1)
      raise ProjectConfigError(
        f"Unknown key {key!r} in [{TABLE}] of {path!r}."
        + (f" Did you mean {close[0]!r}?" if close else ""),
        received=f"{key} = {table[key]!r}"[:200],
        fix=f"Use the keys od_guard reads: {', '.join(KEYS)}.",
      )
  out: dict = {"path": path}
  if "policy" in table:
    value = table["policy"]
    if not isinstance(value, str) or value not in policy_lib.PRESETS:
      raise _wrong(path, "policy", value, f"one of {', '.join(policy_lib.PRESETS)}", '"default"')
    out["policy"] = value
  for key in ("min_backbone_coverage", "min_neck_coverage"):
    if key in table:
      out[key] = _fraction(path, key, table[key], ini=ini)
  for key in ("ignore", "select"):
    if key in table:
      value = table[key]
      if ini and isinstance(value, str):
        value = value.replace("\n", ",")
      out[key] = policy_lib.parse_codes(value, source=f"[{TABLE}] {key} of {path}")
  if "naming_rules" in table:
    value = table["naming_rules"]
    if not isinstance(value, str) or not value.strip():
      raise _wrong(path, "naming_rules", value, "a path (a TOML rules file)", '"naming.toml"')
    out["naming_rules"] = os.path.join(os.path.dirname(os.path.abspath(path)), value.strip())
  if "where" in table:
    value = table["where"]
    if not isinstance(value, str) or value.strip() not in WHERE:
      raise _wrong(path, "where", value, f"one of {', '.join(WHERE)}", '"repo"')
    out["where"] = value.strip()
  return ProjectConfig(**out)


def _fraction(path: str, key: str, value, *, ini: bool) -> float:
  if ini and isinstance(value, str):
    with contextlib.suppress(ValueError):
      value = float(value)
  if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
    raise _wrong(path, key, value, "a fraction between 0 and 1", "0.95")
  return float(value)
