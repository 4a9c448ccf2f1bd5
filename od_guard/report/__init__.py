"""The report of a restore check and its renderings: the record (JSON schema
`od_guard.preflight/1`), terminal text, Markdown, TensorBoard. Knows nothing of
the OD API or Keras: may import `od_guard.restore` and `od_guard.checkpoint`.
"""

import importlib


def __getattr__(name: str):
  # Submodules load on first use (`od_guard.report.render.render_text(...)`).
  try:
    return importlib.import_module(f"od_guard.report.{name}")
  except ModuleNotFoundError as e:
    raise AttributeError(f"module 'od_guard.report' has no attribute {name!r}") from e
