"""Generates the reference pages at build time (mkdocs-gen-files runs this).

- reference/cli.md: every `od-guard` subcommand's --help, from
  `od_guard.cli.build_parser()` as Python 3.11's argparse prints it at 100
  columns, and each drop-in's absl flags (`od_guard.odapi.model_main_tf2`,
  `od_guard.odapi.exporter_main_v2`) from its `define_flags` on a fresh `FlagValues`.
- reference/findings.md: every finding code, from `od_guard.restore.codes.CODES`.
- reference/modules.md: every module of od_guard, by its layer in `.importlinter`,
  with the first sentence of its docstring (read with `ast`, not imported).

Neither import needs TensorFlow. The pages exist only in the built site: edit
the sources (cli/parser.py, the drop-ins, restore/codes/, .importlinter, the docstrings),
never the output.
"""

from __future__ import annotations

import argparse
import ast
import configparser
import contextlib
import html
import os
import pathlib
import re

import mkdocs_gen_files

REPO = pathlib.Path(__file__).resolve().parents[2]
COLUMNS = "100"
# The drop-ins: `python -m od_guard.NAME` for object_detection/NAME.py, each defining every
# stock flag with the same name and default, plus od_guard's (`--guard_*`, and these).
DROP_INS = ("model_main_tf2", "exporter_main_v2")
OD_GUARD_FLAGS = frozenset({"num_steps_per_iteration"})  # the OD API hard-codes it


@contextlib.contextmanager
def _columns(n: str):
  old = os.environ.get("COLUMNS")
  os.environ["COLUMNS"] = n
  try:
    yield
  finally:
    if old is None:
      os.environ.pop("COLUMNS", None)
    else:
      os.environ["COLUMNS"] = old


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
  for action in parser._actions:  # argparse has no public accessor for subparsers
    if isinstance(action, argparse._SubParsersAction):
      return dict(action.choices)
  return {}


def _cell(text: object) -> str:
  """Text for a Markdown table cell: no raw HTML (absl writes `<a|b>: ...`), no splits."""
  return html.escape(str(text), quote=False).replace("|", "\\|").replace("\n", " ")


def _drop_in_section(name: str) -> list[str]:
  """The flags of `python -m od_guard.NAME`, from its define_flags on fresh FlagValues."""
  import importlib

  from absl import flags

  fv = flags.FlagValues()
  importlib.import_module(f"od_guard.odapi.{name}").define_flags(fv)
  ours, stock = "od_guard's", f"stock {name}'s (same names, same defaults)"
  rows: dict[str, list[str]] = {ours: [], stock: []}
  for flag_name in sorted(fv):
    flag = fv[flag_name]
    if flag.name != flag_name:  # short names point at the same flag
      continue
    mine = flag_name.startswith("guard_") or flag_name in OD_GUARD_FLAGS
    values = getattr(flag.parser, "enum_values", None)
    typ = flag.flag_type() + (" (" + ", ".join(values) + ")" if values else "")
    default = "" if flag.default is None else f"`{flag.default!r}`"
    row = f"| `--{flag_name}` | {_cell(typ)} | {default} | {_cell(flag.help)} |"
    rows[ours if mine else stock].append(row)
  out = [
    f"## `python -m od_guard.{name}` {{#python-m-od_guard{name}}}",
    "",
    f"The drop-in for `object_detection/{name}.py` ([the OD API page](../odapi.md)): every",
    "stock flag, plus od_guard's. absl also gives it `--helpfull`, `--flagfile`,",
    "`--alsologtostderr` and the other absl logging flags.",
    "",
  ]
  for kind, lines in rows.items():
    out += [f"### Flags: {kind}", "", "| flag | type | default | help |", "|---|---|---|---|"]
    out += [*lines, ""]
  return out


def cli_page() -> str:
  from od_guard import cli

  with _columns(COLUMNS):
    parser = cli.build_parser()
    blocks = [("od-guard", parser.format_help())]
    blocks += [(f"od-guard {n}", p.format_help()) for n, p in _subcommands(parser).items()]
  out = [
    "---",
    "hide: [toc]",  # argparse's 100 columns need the width
    "---",
    "",
    "# CLI reference",
    "",
    "Generated when the site is built, from `od_guard.cli.build_parser()` (each",
    "command's `--help` as Python 3.11's argparse prints it at 100 columns) and from",
    "each drop-in's `define_flags` (`od_guard.odapi.model_main_tf2`, `exporter_main_v2`:",
    "their absl flags).",
    "Exit codes and typed errors: [Getting started](../getting-started.md#exit-codes).",
    "",
  ]
  names = [name for name, _ in blocks]
  out += [f"- [`{n} --help`](#{n.replace(' ', '-')})" for n in names]
  out += [f"- [`python -m od_guard.{n}`](#python-m-od_guard{n})" for n in DROP_INS]
  out.append("")
  for name, text in blocks:
    out += [f"## `{name}` {{#{name.replace(' ', '-')}}}", "", "```text", text.rstrip(), "```", ""]

  for name in DROP_INS:
    out += _drop_in_section(name)
  return "\n".join(out)


def findings_page() -> str:
  out = [
    "# Findings reference",
    "",
    "Every finding code od_guard can report, generated when the site is built from the",
    "registry `od_guard.restore.codes.CODES`: the severity it is raised at (*varies*:",
    "an error in one context and a warning or fact in another, as its meaning says),",
    "what it means, the module that raises it, the usual fix, and what stock TensorFlow,",
    "the OD API's model_main_tf2 or Keras does in the same situation. The policy",
    "([Python API: policy](../api/policy.md)) turns findings into a verdict; each",
    "finding in a report carries its own message and fix, with the names and numbers",
    "of that run.",
    "",
  ]
  try:
    from od_guard.restore import codes
  except ImportError as e:  # only while the registry is being written
    return "\n".join([*out, f'!!! warning "Registry pending"\n    {e}', ""])

  by_layer: dict[str, list] = {}
  for code in codes.CODES.values():
    by_layer.setdefault(code.layer, []).append(code)
  out += [f"{len(codes.CODES)} codes, by the module that raises them.", ""]
  out += ["| code | severity | meaning |", "|---|---|---|"]
  out += [
    f"| [`{c.code}`](#{c.code}) | {c.severity} | {_cell(c.meaning)} |" for c in codes.CODES.values()
  ]
  out.append("")
  for layer, group in by_layer.items():
    out += [f"## `{layer}`", ""]
    for c in group:
      text = lambda s: html.escape(s, quote=False)  # noqa: E731
      out += [f"### `{c.code}` {{#{c.code}}}", "", f"**{c.severity}** · {text(c.meaning)}", ""]
      if c.fix:
        out += [f"**Fix:** {text(c.fix)}", ""]
      if c.stock:
        out += [f"**Stock:** {text(c.stock)}", ""]
  return "\n".join(out)


def _summary(path: pathlib.Path) -> str:
  """The first sentence of a module's docstring, read without importing it."""
  doc = ast.get_docstring(ast.parse(path.read_text())) or ""
  first = " ".join(doc.split("\n\n")[0].split())
  m = re.match(r"(.+?[.!?])(\s|$)", first)
  return (m.group(1) if m else first) or "(no docstring)"


def _modules(name: str) -> list[tuple[str, pathlib.Path]]:
  """`name` and, for a package, every module below it, as (dotted name, file)."""
  base = REPO / name.replace(".", "/")
  if base.with_suffix(".py").exists():
    return [(name, base.with_suffix(".py"))]
  found = []
  for f in sorted(base.rglob("*.py")):
    rel = f.relative_to(REPO).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    found.append((".".join(parts), f))
  return found


def modules_page() -> str:
  parser = configparser.ConfigParser()
  parser.read(REPO / ".importlinter")
  layers = [
    [m.strip() for m in line.split("|")]
    for line in parser["importlinter:contract:layers"]["layers"].strip().splitlines()
  ]
  out = [
    "# Modules by layer",
    "",
    "Generated when the site is built: the layers of `.importlinter`'s `layers` contract,",
    "top (integrations) to bottom, and in each every module with the first sentence of",
    "its docstring. A layer may import only the layers below it; modules on one line",
    "(`a | b`) share a layer and do not import each other. [Design](../design.md) says why.",
    "",
  ]
  placed = set()
  for n, layer in enumerate(layers, 1):
    out += [
      f"## Layer {n}: {', '.join(f'`{m}`' for m in layer)}",
      "",
      "| module | holds |",
      "|---|---|",
    ]
    for top in layer:
      for name, f in _modules(top):
        placed.add(f)
        out.append(f"| `{name}` | {_cell(_summary(f))} |")
    out.append("")
  rest = [f for f in sorted((REPO / "od_guard").rglob("*.py")) if f not in placed]
  if rest:
    out += ["## Outside the layers", "", "Entry points that only forward.", ""]
    out += ["| module | holds |", "|---|---|"]
    for f in rest:
      rel = f.relative_to(REPO).with_suffix("")
      parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
      out.append(f"| `{'.'.join(parts)}` | {_cell(_summary(f))} |")
    out.append("")
  return "\n".join(out)


PAGES = (
  ("reference/cli.md", cli_page),
  ("reference/findings.md", findings_page),
  ("reference/modules.md", modules_page),
)
for path, page in PAGES:
  with mkdocs_gen_files.open(path, "w") as f:
    f.write(page())
  mkdocs_gen_files.set_edit_path(path, "docs/_gen/gen_pages.py")
