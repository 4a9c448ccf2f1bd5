"""`od-guard check --where repo`: the static check in a repository without the data.

A team's repository holds its pipeline.config; the TFRecords and the zoo
checkpoint live on the training machine or in a bucket. In a repository
(pre-commit, CI) the paths that cannot exist here are *not checked here*
instead of failing:

* absolute paths outside the repository (the training machine's mounts);
* ``gs://`` / ``s3://`` URIs when no credentials for them are set up here
  (other URI schemes always);
* paths inside the repository that git ignores (data that is not committed).

Each becomes a `not_checked_here` fact and a "not checked" line that says how
to make it checkable (commit the checkpoint's .index, a few KB, or pass
--checkpoint to a local copy). Everything decidable from the config and the
files present still fails: the checkpoint type against the zoo archive the
path names (`zoo_name_findings`), TF1 fields and extractor names,
placeholders, backslashes, misspelt fields, num_classes against a committed
label map, a committed .index against the config. A missing path inside the
repository that git does not ignore is still an error (a typo).

At training time (`--where training`, the default) nothing here runs.
"""

from __future__ import annotations

import dataclasses
import glob
import os
import re
import subprocess
import tempfile

from od_guard import pipeline
from od_guard.checkpoint import fileio
from od_guard.checkpoint import inventory
from od_guard.odapi import config as pipeline_config
from od_guard.odapi import config_inputs
from od_guard.odapi import input_paths
from od_guard.odapi import preflight
from od_guard.restore import codes
from od_guard.restore import findings

Finding = findings.Finding
REPO = "repo"
TRAINING = "training"

# TF2 Detection Zoo archive names ("ssd_mobilenet_v2_320x320_coco17_tpu-8"):
# every one is a detection checkpoint; its first word names the meta-architecture.
_ZOO_NAME = re.compile(
  r"^(?P<arch>ssd|efficientdet|faster_rcnn|mask_rcnn|centernet|center_net|extremenet)"
  r"[a-z0-9_]*_(?:tpu|gpu)-\d+$"
)
_ZOO_META = {
  "ssd": "ssd",
  "efficientdet": "ssd",
  "faster_rcnn": "faster_rcnn",
  "mask_rcnn": "faster_rcnn",
  "centernet": "center_net",
  "center_net": "center_net",
}
_GLOB_CHARS = ("*", "?", "[")
_GIT_TIMEOUT = 10


def find_root(start: str) -> str:
  """The repository's top directory: the nearest parent of `start` holding
  .git; else the working directory."""
  here = os.path.abspath(start)
  if not os.path.isdir(here):
    here = os.path.dirname(here)
  while True:
    if os.path.lexists(os.path.join(here, ".git")):
      return here
    parent = os.path.dirname(here)
    if parent == here:
      return os.getcwd()
    here = parent


def _credentials(scheme: str) -> bool:
  """Whether this machine has credentials set up for `scheme` (s3, gs)."""
  env = os.environ
  home = os.path.expanduser("~")
  if scheme == "s3":
    return bool(
      env.get("AWS_ACCESS_KEY_ID")
      or env.get("AWS_PROFILE")
      or env.get("AWS_WEB_IDENTITY_TOKEN_FILE")
      or os.path.isfile(
        env.get("AWS_SHARED_CREDENTIALS_FILE", os.path.join(home, ".aws", "credentials"))
      )
    )
  if scheme == "gs":
    adc = os.path.join(
      env.get("CLOUDSDK_CONFIG", os.path.join(home, ".config", "gcloud")),
      "application_default_credentials.json",
    )
    return bool(env.get("GOOGLE_APPLICATION_CREDENTIALS")) or os.path.isfile(adc)
  return False


@dataclasses.dataclass(frozen=True)
class Away:
  """A path the config names that cannot be checked here.

  Attributes:
    field: the config field, e.g. "train_config.fine_tune_checkpoint".
    path: the value as written.
    why: why it cannot be checked here, in words.
  """

  field: str
  path: str
  why: str


class _Here:
  """Which of the config's paths can be checked in the repository at `root`."""

  def __init__(self, root: str):
    self.root = os.path.realpath(root)
    self._ignored: set[str] | None = None
    self._asked: list[str] = []

  def why_not(self, value: str, *, checkpoint: bool = False) -> str | None:
    """Why `value` cannot be checked here, or None when it can (it is here,
    or it could be and is missing: then the usual finding stands)."""
    if pipeline_config.PLACEHOLDER in value or ("\\" in value and os.sep == "/"):
      return None  # decidable from the text: the usual findings
    if fileio.is_remote(value):
      scheme = value.split("://", 1)[0].lower()
      if scheme in ("s3", "gs") and _credentials(scheme):
        return None
      return (
        f"{scheme}:// without credentials here"
        if scheme in ("s3", "gs")
        else (f"a {scheme}:// URI")
      )
    resolved = pipeline_config.resolve_checkpoint_path(fileio.local(value))
    if _present(resolved, checkpoint=checkpoint):
      return None
    real = os.path.realpath(resolved)
    if os.path.commonpath([real, self.root]) != self.root:
      return f"outside the repository ({self.root})"
    if self.git_ignored(real):
      return "ignored by git here (not committed)"
    return None

  def git_ignored(self, path: str) -> bool:
    if self._ignored is None:
      self._ignored = set()
    if path in self._asked:
      return path in self._ignored
    self._asked.append(path)
    try:
      r = subprocess.run(
        ["git", "-C", self.root, "check-ignore", "-q", "--", os.path.relpath(path, self.root)],
        capture_output=True,
        timeout=_GIT_TIMEOUT,
        check=False,
      )
    except (OSError, subprocess.SubprocessError):
      return False
    if r.returncode == 0:
      self._ignored.add(path)
      return True
    return False


def _present(resolved: str, *, checkpoint: bool) -> bool:
  if any(c in resolved for c in _GLOB_CHARS) and not checkpoint:
    return bool(glob.glob(resolved))
  return os.path.exists(resolved) or (checkpoint and os.path.exists(resolved + ".index"))


def _strip_reader(
  reader: config_inputs.InputReader, here: _Here, away: list[Away]
) -> config_inputs.InputReader:
  kept = []
  for value in reader.input_paths:
    why = here.why_not(value)
    if why:
      away.append(Away(f"{reader.role}.tf_record_input_reader.input_path", value, why))
    else:
      kept.append(value)
  label_map = reader.label_map_path
  if label_map:
    why = here.why_not(label_map)
    if why:
      away.append(Away(f"{reader.role}.label_map_path", label_map, why))
      label_map = ""
  return dataclasses.replace(reader, label_map_path=label_map, input_paths=tuple(kept))


def zoo_name_findings(config: pipeline_config.FineTuneConfig) -> list[Finding]:
  """What the zoo archive name in fine_tune_checkpoint says, without the
  checkpoint: every TF2 Detection Zoo archive is a detection checkpoint of
  the meta-architecture its name starts with."""
  parts = [p for p in re.split(r"[/\\]", config.fine_tune_checkpoint) if p]
  zoo = next((p for p in reversed(parts) if _ZOO_NAME.match(p)), None)
  if zoo is None:
    return []
  out = []
  detail = f'fine_tune_checkpoint: "{config.fine_tune_checkpoint}" names the zoo archive {zoo}'
  if config.effective_checkpoint_type == "classification":
    out.append(
      Finding(
        "checkpoint_type_mismatch",
        findings.ERROR,
        'fine_tune_checkpoint_type is "classification" but the checkpoint is a TF2 '
        "Detection Zoo model, a detection checkpoint: nothing would be restored.",
        detail=detail + " (every zoo archive is a detection checkpoint).",
        fix='Set fine_tune_checkpoint_type: "detection"',
        stock_outcome=(
          "AssertionError: Found N Python objects that were not bound to checkpointed values"
        ),
        data={"from": "zoo_name", "zoo_model": zoo},
      )
    )
  meta = _ZOO_META.get(_ZOO_NAME.match(zoo).group("arch"))
  if meta and config.meta_architecture and meta != config.meta_architecture:
    out.append(
      Finding(
        "meta_architecture_mismatch",
        findings.ERROR,
        f"The config builds a {config.meta_architecture} model but fine_tune_checkpoint "
        f"names a {meta} zoo model.",
        detail=detail + ".",
        fix=f"Start from the zoo config of {zoo} (its pipeline.config), or point "
        f"fine_tune_checkpoint at a {config.meta_architecture} zoo model.",
        stock_outcome="restores nothing of the backbone, or fails on shapes",
        data={"from": "zoo_name", "zoo_model": zoo},
      )
    )
  return out


def _not_checked_here(a: Away, *, checkpoint: bool) -> Finding:
  if checkpoint:
    fix = (
      "To check it here, commit the checkpoint's .index (a few KB; `git add -f` if git "
      "ignores it) at the path the config names, or pass --checkpoint to a local copy "
      "(its .index alone is enough for the static check)."
    )
  else:
    fix = (
      "It is checked at training time; commit the file (or pass --where training) to check it here."
    )
  return Finding(
    "not_checked_here",
    findings.INFO,
    f"{a.field} is not checked here: {a.why}.",
    detail=f'{a.field}: "{a.path}"',
    fix=fix,
    data={"field": a.field, "path": a.path, "why": a.why},
  )


def read(
  config_path: str,
  *,
  checkpoint: str | None = None,
  model_dir: str | None = None,
  root: str | None = None,
  object_graph: str = inventory.OBJECT_GRAPH_SUMMARY,
) -> pipeline.Static:
  """`preflight.read` for a repository at `root` (default: the config's
  repository, `find_root`): paths that cannot exist here become facts, not
  errors; every other diagnosis of the read stage is as `preflight.read`
  makes it. The result feeds `preflight.check_static(static=...)`.

  Raises:
    OdGuardError: the config cannot be read.
  """
  here = _Here(root or find_root(config_path))
  value = ""
  if checkpoint is None:
    message, text = pipeline_config.parse_with_text(config_path)
    value = pipeline_config.read(config_path, message, text=text).fine_tune_checkpoint
  why = here.why_not(value, checkpoint=True) if value else None
  if why is None:
    static = preflight.read(
      config_path, checkpoint=checkpoint, model_dir=model_dir, object_graph=object_graph
    )
  else:
    # Not read at all (a bucket would be asked over the network): the read
    # stage is given a checkpoint that is certainly absent, whose one
    # finding, checkpoint_not_found, is replaced below.
    with tempfile.TemporaryDirectory(prefix="od_guard_repo_") as empty:
      static = preflight.read(
        config_path,
        checkpoint=os.path.join(empty, "not_checked_here"),
        model_dir=model_dir,
        object_graph=object_graph,
      )
    static.found[:] = [f for f in static.found if f.code != "checkpoint_not_found"]
  config = static.context.config
  with static.timer.phase("static"):
    if why is not None:
      a = Away("train_config.fine_tune_checkpoint", value, why)
      static.found.append(_not_checked_here(a, checkpoint=True))
      static.found.extend(zoo_name_findings(config))
      static.not_checked.append(
        f"the fine-tune checkpoint {value} ({why}): its format, version, type and "
        "architecture against the config; commit its .index or pass --checkpoint to check them"
      )
    away: list[Away] = []
    stripped = dataclasses.replace(
      config,
      train_input=None
      if config.train_input is None
      else _strip_reader(config.train_input, here, away),
      eval_inputs=tuple(_strip_reader(r, here, away) for r in config.eval_inputs),
    )
    if away:
      # The input readers' findings again, without the paths not checked here.
      static.found[:] = [
        f for f in static.found if codes.CODES[f.code].layer != input_paths.__name__
      ]
      static.found.extend(input_paths.diagnose(stripped))
      static.found.extend(_not_checked_here(a, checkpoint=False) for a in away)
      static.not_checked.append(
        "input files not present here, checked at training time: "
        + "; ".join(f"{a.path} ({a.why})" for a in away)
      )
  return static
