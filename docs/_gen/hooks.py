"""MkDocs hooks (mkdocs.yml `hooks:`).

- A hand-written page may hold a marker that the build replaces with a table generated
  from the code: `<!-- od_guard:compat-shims -->` (the compat layer's shims, from
  `od_guard.odapi.compat.SHIMS` and `describe_shim`), `<!-- od_guard:decide-tables -->`
  (the decision tables of `od_guard.restore.decide`, each code linked to the findings
  reference, so a code that leaves the registry breaks the build).
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


def _codes(codes, findings: str) -> str:
  return ", ".join(f"[`{c}`]({findings}#{c})" for c in sorted(codes))


def _decide_tables(findings: str = "reference/findings.md") -> str:
  from od_guard.restore import decide

  out = [
    "| table | what it says | codes |",
    "|---|---|---|",
    "| `ARCHITECTURE_GUESSES` | static guesses about the architecture that a model-built "
    f"restore binding every variable overrules (they stay as facts) | "
    f"{_codes(decide.ARCHITECTURE_GUESSES, findings)} |",
    "| `NO_MODEL_TIER` | static errors after which the model tier cannot run or say more | "
    f"{_codes(decide.NO_MODEL_TIER, findings)} |",
    "| `FINAL_STATIC` | static errors no model-built match can overrule: the drop-in stops "
    "before importing TensorFlow (these, and every `NO_MODEL_TIER` code) | "
    f"{_codes(decide.FINAL_STATIC - decide.NO_MODEL_TIER, findings)} |",
    "| `INDEX_ONLY` | errors wherever the values must be restored (training, or a policy "
    f"that refuses index-only checkpoints) | {_codes(decide.INDEX_ONLY, findings)} |",
    "",
    "`EXPLAINED_BY`: a finding becomes a fact naming its cause when one of these errors is "
    "present (fixing the cause fixes it):",
    "",
    "| finding | explained by |",
    "|---|---|",
  ]
  for code, causes in decide.EXPLAINED_BY.items():
    out.append(f"| [`{code}`]({findings}#{code}) | {_codes(causes, findings)} |")
  return "\n".join(out)


_FRAGMENTS = {"compat-shims": _compat_shims, "decide-tables": _decide_tables}


def on_page_markdown(markdown: str, **kwargs) -> str:
  def fragment(m: re.Match) -> str:
    if m.group(1) not in _FRAGMENTS:
      raise ValueError(f"unknown od_guard marker {m.group(0)!r} (known: {sorted(_FRAGMENTS)})")
    return _FRAGMENTS[m.group(1)]()

  return _MARKER.sub(fragment, markdown)


def on_page_content(html: str, **kwargs) -> str:
  return _CODE.sub(lambda m: "<code>" + m.group(1).replace("\\|", "|") + "</code>", html)
