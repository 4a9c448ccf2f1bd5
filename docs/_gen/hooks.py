"""MkDocs hooks (mkdocs.yml `hooks:`).

- A hand-written page may hold a marker that the build replaces with a table generated
  from the code: `<!-- od_guard:compat-shims -->` (the compat layer's shims, from
  `od_guard.odapi.compat.SHIMS` and `describe_shim`).
- A `|` inside a code span in a table cell is written `\\|` so that GitHub, which reads
  these pages too, does not split the cell there; Python-Markdown leaves the backslash in
  the code, so it is taken out of the built page here.
"""

from __future__ import annotations

import re

_CODE = re.compile(r"<code>(.*?)</code>", re.DOTALL)
_MARKER = re.compile(r"^<!-- od_guard:([a-z-]+) -->$", re.MULTILINE)


def _compat_shims() -> str:
  from od_guard.odapi import compat

  rows = ["| shim | what it serves |", "|---|---|"]
  for name in compat.SHIMS:
    rows.append(f"| `{name}` | {compat.describe_shim(name).replace('``', '`')} |")
  return "\n".join(rows)


_FRAGMENTS = {"compat-shims": _compat_shims}


def on_page_markdown(markdown: str, **kwargs) -> str:
  def fragment(m: re.Match) -> str:
    if m.group(1) not in _FRAGMENTS:
      raise ValueError(f"unknown od_guard marker {m.group(0)!r} (known: {sorted(_FRAGMENTS)})")
    return _FRAGMENTS[m.group(1)]()

  return _MARKER.sub(fragment, markdown)


def on_page_content(html: str, **kwargs) -> str:
  return _CODE.sub(lambda m: "<code>" + m.group(1).replace("\\|", "|") + "</code>", html)
