"""MkDocs hooks (mkdocs.yml `hooks:`).

A `|` inside a code span in a table cell is written `\\|` so that GitHub, which reads
these pages too, does not split the cell there; Python-Markdown leaves the backslash in
the code, so it is taken out of the built page here.
"""

from __future__ import annotations

import re

_CODE = re.compile(r"<code>(.*?)</code>", re.DOTALL)


def on_page_content(html: str, **kwargs) -> str:
  return _CODE.sub(lambda m: "<code>" + m.group(1).replace("\\|", "|") + "</code>", html)
