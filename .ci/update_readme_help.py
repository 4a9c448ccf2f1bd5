"""Rewrites README.md's `--help` blocks from the `od-guard` command itself.

Each block is a fence whose info string names the command it shows:

    ```text od-guard inspect --help
    usage: od-guard inspect [-h] ...
    ```

Help is rendered at COLUMNS=100 by Python 3.11's argparse (other Pythons wrap
differently). tests/release_test.py fails when a block is stale or missing; run
this, with od_guard importable (any of the project's environments), to refresh
them. A subcommand without a block gets one after the last block.

Usage: python .ci/update_readme_help.py
"""

import os
import pathlib
import re
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parent.parent
README = REPO / "README.md"
COLUMNS = "100"
FENCE = re.compile(r"^```text (od-guard(?: [a-z-]+)? --help)\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def help_text(command: str) -> str:
  """What `command` (e.g. 'od-guard check --help') prints, at COLUMNS=100."""
  argv = command.split()[1:]
  r = subprocess.run(
    [sys.executable, "-m", "od_guard", *argv],
    capture_output=True,
    text=True,
    check=True,
    cwd=REPO,
    env=dict(os.environ, COLUMNS=COLUMNS, PYTHONPATH=str(REPO)),
  )
  return r.stdout


def subcommands() -> list[str]:
  """The subcommands `od-guard --help` lists, in its order."""
  usage = help_text("od-guard --help")
  return re.search(r"\{([a-z,-]+)\}", usage).group(1).split(",")


def _block(command: str) -> str:
  return (
    f"\n<details><summary><code>{command}</code></summary>\n\n```text {command}\n```\n</details>\n"
  )


def main() -> None:
  text = README.read_text()
  documented = [m.group(1) for m in FENCE.finditer(text)]
  if not documented:
    sys.exit("README.md has no ```text od-guard --help block to start from")
  wanted = ["od-guard --help", *(f"od-guard {c} --help" for c in subcommands())]
  missing = "".join(_block(c) for c in wanted if c not in documented)
  if missing:
    end = text.index("</details>\n", list(FENCE.finditer(text))[-1].end()) + len("</details>\n")
    text = text[:end] + missing + text[end:]
  README.write_text(FENCE.sub(lambda m: f"```text {m.group(1)}\n{help_text(m.group(1))}```", text))


if __name__ == "__main__":
  main()
