"""What `od-guard --version` prints: od_guard's version, and the versions that
decide what works here (Python, TensorFlow, protobuf, the OD API) with the
schema pipeline.config is read with. Versions come from package metadata, so
nothing is imported: TensorFlow would take seconds, and the OD API's protos may
not load (which is what the last line explains)."""

from __future__ import annotations

import importlib.metadata
import platform

from od_guard import __version__
from od_guard import errors
from od_guard.odapi import config_schema

# Each package, under the distribution names it is published as.
_DISTRIBUTIONS = {
  "tensorflow": ("tensorflow", "tensorflow-cpu", "tensorflow-macos", "tf-nightly"),
  "protobuf": ("protobuf",),
  "object-detection": ("tf-models-research-object-detection", "object-detection"),
}


def installed(package: str) -> str | None:
  """The installed version of `package` (a key of _DISTRIBUTIONS), or None."""
  for distribution in _DISTRIBUTIONS[package]:
    try:
      return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
      continue
  return None


def describe() -> str:
  """The lines `od-guard --version` prints; the first is 'od_guard X.Y.Z'."""
  odapi = installed("object-detection")
  if odapi is None and config_schema.protos_dir() is not None:
    odapi = "installed, version unknown (no package metadata)"
  try:
    schema = config_schema.load()
    how = f"{schema.route} ({schema.source})"
  except errors.OdGuardError as e:
    how = e.what
  return "\n".join(
    [
      f"od_guard {__version__}",
      f"python {platform.python_version()}",
      f"tensorflow {installed('tensorflow') or 'not installed'}",
      f"protobuf {config_schema.protobuf_description()}",
      f"object-detection {odapi or 'not installed'}",
      f"pipeline.config schema: {how}",
      _compat_line(),
    ]
  )


def _compat_line() -> str:
  """Which shims of the compat layer are active here (or would be, on install)."""
  from od_guard.odapi import compat

  try:
    mode = compat.requested_mode()
  except errors.UsageError as e:
    return f"odapi compat: {e.what}"
  active = compat.active()
  if mode == compat.OFF:
    return f"odapi compat ({compat.ENV}={mode}): off"
  shims = active or compat.needed()
  state = "active" if active else "needed"
  return f"odapi compat ({compat.ENV}={mode}): " + (
    f"{', '.join(shims)} ({state})" if shims else "nothing needed"
  )
