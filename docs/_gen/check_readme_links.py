"""Checks that every relative link in README.md reaches a file, and every anchor a heading.

Run by `make docs` after `mkdocs build`: a link into docs/ must name a heading of that
page as GitHub slugs it (README.md is read on GitHub and PyPI) and an id of the page
mkdocs built into site/ (for the generated pages, only the latter exists). External links
are not fetched. Exit 1 listing every broken link.

Usage: python docs/_gen/check_readme_links.py [README.md ...]
"""

from __future__ import annotations

import html
import pathlib
import re
import sys

REPO = pathlib.Path(__file__).resolve().parents[2]
SITE = REPO / "site"
LINK = re.compile(r"!?\[(?:[^\]\\]|\\.)*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^(```|~~~)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


def _prose(text: str) -> list[str]:
  """The lines outside fenced code blocks."""
  lines, fenced = [], False
  for line in text.splitlines():
    if FENCE.match(line.lstrip()):
      fenced = not fenced
      continue
    if not fenced:
      lines.append(line)
  return lines


def github_slugs(text: str) -> set[str]:
  """The anchors GitHub gives the headings of a Markdown file."""
  seen: dict[str, int] = {}
  slugs = set()
  for line in _prose(text):
    m = HEADING.match(line)
    if not m:
      continue
    title = re.sub(r"\{#[^}]*\}$", "", m.group(2))  # attr_list ids are mkdocs-only
    slug = re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")
    n = seen.get(slug, 0)
    seen[slug] = n + 1
    slugs.add(slug if n == 0 else f"{slug}-{n}")
  return slugs


def site_ids(page: pathlib.Path) -> set[str] | None:
  """The element ids of the page mkdocs built from docs/`page`, None if not built."""
  rel = page.relative_to(REPO / "docs").with_suffix("")
  built = SITE / ("index.html" if rel.name == "index" else rel / "index.html")
  if rel.name == "index" and rel.parent != pathlib.Path("."):
    built = SITE / rel.parent / "index.html"
  if not built.exists():
    return None
  return {html.unescape(i) for i in re.findall(r'\bid="([^"]+)"', built.read_text())}


def generated(page: pathlib.Path) -> bool:
  return page.is_relative_to(REPO / "docs" / "reference")


def check(readme: pathlib.Path) -> list[str]:
  problems = []
  for line in _prose(readme.read_text()):
    for target in LINK.findall(re.sub(r"`[^`]*`", "", line)):
      if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
        continue
      path, _, anchor = target.partition("#")
      file = (readme.parent / path).resolve() if path else readme
      if not file.exists():
        problems.append(f"{target}: no file {file.relative_to(REPO)}")
        continue
      if not anchor:
        continue
      if file.suffix != ".md":
        problems.append(f"{target}: an anchor into a file that is not Markdown")
        continue
      in_docs = file.is_relative_to(REPO / "docs")
      if not (in_docs and generated(file)) and anchor not in github_slugs(file.read_text()):
        problems.append(f"{target}: no heading #{anchor} in {file.relative_to(REPO)} (GitHub)")
      if in_docs:
        ids = site_ids(file)
        if ids is None:
          problems.append(f"{target}: {file.relative_to(REPO)} is not in site/ (run mkdocs build)")
        elif anchor not in ids:
          problems.append(
            f"{target}: no id #{anchor} in the built page of {file.relative_to(REPO)}"
          )
  return problems


def main(argv: list[str]) -> int:
  readmes = [pathlib.Path(a).resolve() for a in argv] or [REPO / "README.md"]
  problems = [f"{r.relative_to(REPO)}: {p}" for r in readmes for p in check(r)]
  for p in problems:
    print(p, file=sys.stderr)
  if not problems:
    print(f"README links: every link of {', '.join(r.name for r in readmes)} resolves")
  return 1 if problems else 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
