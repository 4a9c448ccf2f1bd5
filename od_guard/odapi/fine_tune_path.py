"""Where `fine_tune_checkpoint` points: the path mistakes users make.

A placeholder left from the zoo config, Windows backslashes, a path relative
to the wrong folder, one of the checkpoint's files instead of its prefix, a
directory, a TF1 `model.ckpt` name, a missing `checkpoint/` folder, the
checkpoint inside model_dir. Each finding proposes the checkpoint found
nearby when there is exactly the one the user meant (`checkpoint.search`).
No TensorFlow.
"""

from __future__ import annotations

import os
import re

from od_guard import errors
from od_guard.checkpoint import fileio
from od_guard.checkpoint import paths as checkpoint_path
from od_guard.checkpoint import search
from od_guard.odapi import config as pipeline_config
from od_guard.restore import findings

Finding = findings.Finding
_DATA_FILE = re.compile(checkpoint_path.DATA_SHARD_SUFFIX)


def _zoo_fix(path: str) -> str:
  return (
    f"set fine_tune_checkpoint to the checkpoint prefix, e.g. "
    f'"{path}" (the files are <prefix>.index and <prefix>.data-*)'
  )


def diagnose(
  config: pipeline_config.FineTuneConfig,
  *,
  checkpoint: str | None = None,
  model_dir: str | None = None,
) -> tuple[list[Finding], str | None]:
  """Checks where the fine-tune checkpoint points.

  Args:
    config: the parsed config.
    checkpoint: a path that overrides config.fine_tune_checkpoint (any form
      `checkpoint_path.resolve` accepts).
    model_dir: the training output directory, if known.

  Returns:
    (findings, path to read the checkpoint from, or None if there is none).
  """
  if checkpoint is not None:
    # An explicit checkpoint to check (od-guard check --checkpoint): any form
    # `inspect` accepts is fine; the config's own value is not in question.
    try:
      return [], checkpoint_path.resolve(checkpoint).path
    except errors.CheckpointNotFoundError:
      return [], checkpoint
  value = config.fine_tune_checkpoint
  if not value:
    return [_no_checkpoint(config)], None
  if pipeline_config.PLACEHOLDER in value:
    return [_placeholder(value)], None
  if "\\" in value and os.sep == "/":
    return _not_found_near(config, value)[0], None
  resolved = pipeline_config.resolve_checkpoint_path(value)
  out, beside_config = _relative_path(config, value, resolved)
  if beside_config is not None:
    return out, beside_config
  if not _names_anything(resolved):
    found, _ = _not_found_near(config, value)
    return out + found, None
  for wrong_kind in (_file_not_prefix, _directory):
    found = wrong_kind(value, resolved)
    if found is not None:
      finding, prefix = found
      return [*out, finding], prefix
  out.extend(_in_model_dir(resolved, model_dir))
  return out, resolved


def _names_anything(resolved: str) -> bool:
  if fileio.is_remote(resolved):
    return True  # not searched: the read says whether it is there
  return (
    os.path.exists(resolved)
    or os.path.exists(resolved + ".index")
    or bool(_DATA_FILE.search(resolved) and os.path.exists(resolved))
  )


def _not_found_near(
  config: pipeline_config.FineTuneConfig, value: str
) -> tuple[list[Finding], str | None]:
  """fine_tune_checkpoint names nothing: the checkpoint most likely meant, found
  near it (its parents, the config's folder, the working directory), and why
  the path missed it."""
  config_dir = os.path.dirname(os.path.abspath(config.path))
  found = search.find_near(value, config_dir=config_dir)
  proposed = found.prefix if found else None
  fix = (
    f'Set fine_tune_checkpoint: "{proposed}"'
    if proposed
    else "Point fine_tune_checkpoint at the checkpoint prefix: the folder where you "
    'extracted the zoo model + "/checkpoint/ckpt-0" (the files are ckpt-0.index and '
    "ckpt-0.data-00000-of-00001)."
  )
  data = {"proposed": proposed} if proposed else {}
  stock = "fails after building the model and the input pipeline (NotFoundError)"
  unix = value.replace("\\", "/")
  if "\\" in value and os.sep == "/":
    return [
      Finding(
        "windows_path_separator",
        findings.ERROR,
        "fine_tune_checkpoint uses Windows backslashes, which are not path separators here.",
        detail=f'fine_tune_checkpoint: "{value}" (one file name on this system)',
        fix=fix if proposed else f'Use forward slashes: fine_tune_checkpoint: "{unix}"',
        stock_outcome=stock,
        data=data,
      )
    ], proposed
  given = pipeline_config.resolve_checkpoint_path(value)
  name = fileio.basename(given)
  if proposed and name.startswith("model.ckpt"):
    code, title = (
      "tf1_checkpoint_name",
      "fine_tune_checkpoint names a TF1 model.ckpt; the TF2 zoo model's checkpoint is "
      "checkpoint/ckpt-0.",
    )
  elif proposed and os.path.normpath(proposed) == os.path.join(
    os.path.dirname(given), "checkpoint", name
  ):
    code, title = (
      "checkpoint_subdir_missing",
      "fine_tune_checkpoint misses the 'checkpoint/' folder of the zoo model.",
    )
  else:
    code, title = "checkpoint_not_found", "fine_tune_checkpoint names no checkpoint."
  return [
    Finding(
      code,
      findings.ERROR,
      title,
      detail=f'"{value}" -> {given}: no {name}.index there'
      + (
        f"; the checkpoint found nearby: {proposed} ({found.reason or 'closest match'})"
        if found
        else ""
      ),
      fix=fix,
      stock_outcome=stock,
      data=data,
    )
  ], proposed


def _no_checkpoint(config: pipeline_config.FineTuneConfig) -> Finding:
  return Finding(
    "no_fine_tune_checkpoint",
    findings.WARNING,
    "No fine_tune_checkpoint: the model trains from randomly initialised weights.",
    detail=f"train_config.fine_tune_checkpoint is empty in {config.path}.",
    fix=(
      "If you meant to fine-tune, set train_config.fine_tune_checkpoint to the "
      'checkpoint prefix (e.g. ".../checkpoint/ckpt-0").'
    ),
    stock_outcome="trains from scratch without a word",
  )


def _placeholder(value: str) -> Finding:
  return Finding(
    "placeholder_path",
    findings.ERROR,
    "fine_tune_checkpoint still holds the zoo's PATH_TO_BE_CONFIGURED placeholder.",
    detail=f'fine_tune_checkpoint: "{value}"',
    fix=(
      "Replace PATH_TO_BE_CONFIGURED with the directory where you extracted the "
      'zoo model, e.g. "models/ssd_mobilenet_v2/checkpoint/ckpt-0".'
    ),
    stock_outcome="fails after building the model and the input pipeline (NotFoundError)",
  )


def _relative_path(
  config: pipeline_config.FineTuneConfig, value: str, resolved: str
) -> tuple[list[Finding], str | None]:
  """A relative path: an error when only the config's directory has it (then
  that is the path to read), else a warning."""
  if os.path.isabs(value) or fileio.is_remote(value):
    return [], None
  beside_config = os.path.join(os.path.dirname(os.path.abspath(config.path)), value)
  here = fileio.exists(resolved) or fileio.exists(resolved + ".index")
  there = fileio.exists(beside_config) or fileio.exists(beside_config + ".index")
  if not here and there:
    return [
      Finding(
        "relative_checkpoint_path",
        findings.ERROR,
        "fine_tune_checkpoint is relative to the config's directory, but the OD API "
        "resolves it against the working directory.",
        detail=f'"{value}" -> {resolved} (missing); beside the config: {beside_config}',
        fix=f'Use the absolute path: fine_tune_checkpoint: "{os.path.abspath(beside_config)}"',
        stock_outcome="fails after building the model (NotFoundError)",
      )
    ], beside_config
  return [
    Finding(
      "relative_checkpoint_path",
      findings.WARNING,
      "fine_tune_checkpoint is a relative path: it resolves against the working "
      "directory, so the run depends on where it is started.",
      detail=f'"{value}" -> {resolved} (from {os.getcwd()})',
      fix=f'Use the absolute path: fine_tune_checkpoint: "{resolved}"',
    )
  ], None


def _file_not_prefix(value: str, resolved: str) -> tuple[Finding, str] | None:
  """An .index or .data-* file named instead of the prefix."""
  if fileio.basename(resolved).endswith(".index"):
    prefix = resolved[: -len(".index")]
  elif _DATA_FILE.search(resolved):
    prefix = _DATA_FILE.sub("", resolved)
  else:
    return None
  return Finding(
    "checkpoint_path_is_file",
    findings.ERROR,
    "fine_tune_checkpoint names one of the checkpoint's files, not its prefix.",
    detail=f'fine_tune_checkpoint: "{value}"',
    fix=f'Drop the file suffix: fine_tune_checkpoint: "{prefix}"',
    stock_outcome="fails after building the model (the restore finds no checkpoint)",
  ), prefix


def _directory(value: str, resolved: str) -> tuple[Finding, str | None] | None:
  """A directory named instead of a prefix (the prefix inside, if any, is read)."""
  if not (fileio.exists(resolved) and fileio.isdir(resolved)):
    return None
  try:
    prefix = checkpoint_path.resolve(resolved).path
  except errors.OdGuardError:
    prefix = None
  return Finding(
    "checkpoint_path_is_directory",
    findings.ERROR,
    "fine_tune_checkpoint names a directory; the OD API needs a checkpoint prefix.",
    detail=f'fine_tune_checkpoint: "{value}" is a directory',
    fix=(
      _zoo_fix(prefix)
      if prefix
      else 'Point it at the checkpoint prefix inside, e.g. ".../checkpoint/ckpt-0".'
    ),
    stock_outcome="fails after building the model (the restore cannot open a directory)",
  ), prefix


def _in_model_dir(resolved: str, model_dir: str | None) -> list[Finding]:
  if not model_dir:
    return []
  ckpt_dir = os.path.abspath(os.path.dirname(resolved))
  if ckpt_dir != os.path.abspath(model_dir):
    return []
  return [
    Finding(
      "checkpoint_in_model_dir",
      findings.ERROR,
      "The fine-tune checkpoint lies in model_dir, where training writes its own.",
      detail=f"checkpoint dir {ckpt_dir} == model_dir {os.path.abspath(model_dir)}",
      fix="Use a fresh --model_dir, or move the fine-tune checkpoint elsewhere.",
      stock_outcome=(
        "RuntimeError: Checkpoint dir (...) and model_dir (...) cannot be same. "
        "Please set model_dir to a different path."
      ),
    )
  ]
