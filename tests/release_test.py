"""What a release says about itself agrees with the code: the version and
CHANGELOG.md, and the README's front page names every command (their --help is
the docs' CLI reference, generated from the parsers when the site is built)."""

from __future__ import annotations

import argparse
import re
import sys

import pytest

import od_guard

from conftest import REPO

pytestmark = pytest.mark.plain


def test_the_version_is_pep_440_major_minor_patch():
  from packaging import version

  parsed = version.Version(od_guard.__version__)
  assert str(parsed) == od_guard.__version__
  assert re.fullmatch(r"\d+\.\d+\.\d+", od_guard.__version__)


def test_the_changelogs_newest_entry_is_this_version():
  headings = re.findall(r"^## (\d+\.\d+\.\d+)\b(.*)$", (REPO / "CHANGELOG.md").read_text(), re.M)
  assert headings, "CHANGELOG.md needs '## X.Y.Z' headings"
  newest, note = headings[0]
  assert newest == od_guard.__version__
  versions = [tuple(map(int, v.split("."))) for v, _ in headings]
  assert versions == sorted(versions, reverse=True)
  assert all("unreleased" not in rest for _, rest in headings[1:])


def _subcommands() -> list[str]:
  from od_guard import cli

  (sub,) = [a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
  return sorted(sub.choices)


def test_the_readme_names_every_command_and_links_the_cli_reference():
  readme = (REPO / "README.md").read_text()
  assert _subcommands() == sorted(
    ["check", "diff", "doctor", "fix", "inspect", "lint", "remap", "verify"]
  )
  assert [c for c in _subcommands() if f"od-guard {c}" not in readme] == []
  assert "(docs/reference/cli.md)" in readme
  # The page in the tree says where its content comes from; make docs builds it.
  assert "generated" in (REPO / "docs" / "reference" / "cli.md").read_text().lower()


if __name__ == "__main__":
  sys.exit(pytest.main([__file__, "-q"]))
