"""What a release says about itself agrees with the code: the version and
CHANGELOG.md, and every `--help` shown in README.md with the command's own."""

from __future__ import annotations

import re
import runpy
import sys

import pytest

import od_guard

from conftest import REPO

pytestmark = pytest.mark.plain
UPDATER = runpy.run_path(str(REPO / ".ci" / "update_readme_help.py"), run_name="update_readme_help")


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


def test_the_readme_shows_the_help_of_every_command():
  documented = [m.group(1) for m in UPDATER["FENCE"].finditer((REPO / "README.md").read_text())]
  wanted = ["od-guard --help", *(f"od-guard {c} --help" for c in UPDATER["subcommands"]())]
  assert sorted(documented) == sorted(wanted)


@pytest.mark.skipif(
  sys.version_info[:2] != (3, 11), reason="README's --help is Python 3.11's argparse layout"
)
def test_the_readmes_help_is_what_the_commands_print():
  for m in UPDATER["FENCE"].finditer((REPO / "README.md").read_text()):
    assert m.group(2) == UPDATER["help_text"](m.group(1)), (
      f"README.md's `{m.group(1)}` is stale: run `python .ci/update_readme_help.py`"
    )


if __name__ == "__main__":
  sys.exit(pytest.main([__file__, "-q"]))
