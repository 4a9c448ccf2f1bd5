"""Diagnoses from the config and the checkpoint's metadata alone (no TF).

These are the checks `od-guard check --static` runs in milliseconds: where
`fine_tune_checkpoint` points, the checkpoint's format and version, whether
`fine_tune_checkpoint_type` fits the checkpoint's root objects, and whether
the checkpoint's fingerprint fits the configured architecture. Each finding
names the cause and the exact change that fixes it, and, where it is known,
what stock model_main_tf2 does instead.
"""

from __future__ import annotations

import os
import re

from od_guard import errors
from od_guard.checkpoint import fileio
from od_guard.checkpoint import inventory
from od_guard.checkpoint import paths as checkpoint_path
from od_guard.checkpoint import search
from od_guard.odapi import config as pipeline_config
from od_guard.restore import findings
from od_guard.restore import fingerprint as fingerprint_lib

Finding = findings.Finding
_DATA_FILE = re.compile(checkpoint_path.DATA_SHARD_SUFFIX)
_STOCK_UNBOUND = (
  "AssertionError: Found {n} Python objects that were not bound to "
  "checkpointed values, likely due to changes in the Python program."
)
_STOCK_SHAPE_MISMATCH = "ValueError: Cannot assign value to variable '...': Shape mismatch"


def _zoo_fix(path: str) -> str:
  return (
    f"set fine_tune_checkpoint to the checkpoint prefix, e.g. "
    f'"{path}" (the files are <prefix>.index and <prefix>.data-*)'
  )


def diagnose_path(
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


def diagnose_checkpoint(
  config: pipeline_config.FineTuneConfig, inv: inventory.Inventory, fp: fingerprint_lib.Fingerprint
) -> list[Finding]:
  """Checks the checkpoint's format, version, type and architecture against the config."""
  out = _data_shard(inv)
  wrong_format = _wrong_format(inv, fp)
  if wrong_format is not None:
    return [*out, wrong_format]  # nothing else about it applies
  out.extend(_version(config))
  if fp.checkpoint_kind == fingerprint_lib.WEIGHTLESS:
    return [*out, _weightless(inv)]
  out.extend(_checkpoint_type(config, fp))
  out.extend(_dummy_computation(config))
  out.extend(_diagnose_architecture(config, fp))
  if not any(f.severity == findings.ERROR for f in out):
    out.extend(_diagnose_restore_scopes(config, inv, fp))
  return out


def _data_shard(inv: inventory.Inventory) -> list[Finding]:
  if inv.data_shards != inventory.SHARDS_MISSING:
    return []
  return [
    Finding(
      "data_shard_missing",
      findings.WARNING,
      "The checkpoint's data shard is missing: names, shapes and dtypes were checked "
      "from the index; tensor values and the object graph were not.",
      detail="missing: " + ", ".join(fileio.basename(m) for m in inv.missing_shards),
      fix=("Copy the .data-* files next to the .index; training cannot restore without them."),
      stock_outcome="fails when restoring (DataLossError / NotFoundError on the data file)",
    )
  ]


def _wrong_format(inv: inventory.Inventory, fp: fingerprint_lib.Fingerprint) -> Finding | None:
  """A TF1 name-based checkpoint or a SavedModel's variables: the TF2 OD API
  cannot restore either."""
  if inv.format == inventory.TF1_NAME_BASED:
    return Finding(
      "tf1_checkpoint",
      findings.ERROR,
      "The checkpoint is TF1 name-based; the TF2 OD API restores object-based checkpoints only.",
      detail=(
        f"{inv.prefix} has no object graph; its keys are TF1 variable names "
        f"(e.g. {inv.variables[0].key if inv.variables else '?'})."
      ),
      fix=(
        "Use the TF2 Detection Zoo's checkpoint of this model (checkpoint/ckpt-0), "
        "or convert this one for the built target model: "
        "od_guard.naming.tf1_conversion.tf1_to_object_based(src, dst, {'model': model}, rules=[...]) "
        "maps TF1 names to the model's variable names where the shapes fit."
      ),
      stock_outcome="IOError: Checkpoint is expected to be an object-based checkpoint.",
    )
  if inv.format == inventory.SAVED_MODEL or inv.resolved.saved_model:
    return Finding(
      "saved_model_variables",
      findings.ERROR,
      "fine_tune_checkpoint points at a SavedModel's variables, whose object paths "
      "differ from a training checkpoint's.",
      detail=f"{inv.prefix}: root objects {', '.join(fp.root_objects[:4])}",
      fix=(
        "Point at the training checkpoint exported with it: "
        '".../checkpoint/ckpt-0", not ".../saved_model/variables/variables".'
      ),
      stock_outcome=_STOCK_UNBOUND.format(n="N"),
    )
  return None


def _version(config: pipeline_config.FineTuneConfig) -> list[Finding]:
  if config.fine_tune_checkpoint_version == "V2":
    return []
  how = "is V1" if config.version_set else "is not set (the proto default is V1)"
  return [
    Finding(
      "checkpoint_version_v1",
      findings.ERROR,
      f"fine_tune_checkpoint_version {how}; the TF2 OD API accepts V2 only.",
      detail=f"train_config in {config.path}",
      fix="Add to train_config: fine_tune_checkpoint_version: V2",
      stock_outcome="ValueError: Checkpoint version should be V2",
    )
  ]


def _weightless(inv: inventory.Inventory) -> Finding:
  return Finding(
    "weightless_checkpoint",
    findings.ERROR,
    "The checkpoint holds no weights, only bookkeeping (like the step-0 checkpoint "
    "model_main_tf2 writes before the model has variables).",
    detail=f"{inv.prefix}: {', '.join(v.path for v in inv.variables) or 'no values'}",
    fix=(
      "Point at a checkpoint with weights: the zoo's checkpoint/ckpt-0, or one saved "
      "after training steps (model_main_tf2 --checkpoint_every_n)."
    ),
    stock_outcome=_STOCK_UNBOUND.format(n="N"),
  )


_SUPPORTED_TYPES = ("classification", "detection", "full")


def _checkpoint_type(
  config: pipeline_config.FineTuneConfig, fp: fingerprint_lib.Fingerprint
) -> list[Finding]:
  """fine_tune_checkpoint_type against what the meta-architecture supports and
  what the checkpoint's root objects are."""
  ctype = config.effective_checkpoint_type
  supported = _SUPPORTED_TYPES
  if ctype not in supported:
    better = "detection" if fp.checkpoint_kind == fingerprint_lib.DETECTION else "classification"
    stock = (
      'ValueError: "fine_tune" is no longer supported for CenterNet. Please set '
      'fine_tune_checkpoint_type to "detection"'
      if ctype == "fine_tune" and config.meta_architecture == "center_net"
      else f"ValueError: Not supported fine_tune_checkpoint_type: {ctype}"
    )
    return [
      Finding(
        "checkpoint_type_unsupported",
        findings.ERROR,
        f'fine_tune_checkpoint_type "{ctype}" is not supported by {config.meta_architecture}.',
        detail=f"supported: {', '.join(supported)}",
        fix=f'Set fine_tune_checkpoint_type: "{better}"',
        stock_outcome=stock,
      )
    ]
  if fp.checkpoint_kind == fingerprint_lib.DETECTION and ctype == "classification":
    return [
      Finding(
        "checkpoint_type_mismatch",
        findings.ERROR,
        'fine_tune_checkpoint_type is "classification" but the checkpoint is a detection '
        "checkpoint: nothing would be restored.",
        detail=(
          f"\"classification\" restores root object 'feature_extractor'; this "
          f"checkpoint's root holds {', '.join(fp.root_objects)}."
        ),
        fix='Set fine_tune_checkpoint_type: "detection"',
        stock_outcome=_STOCK_UNBOUND.format(n="N"),
      )
    ]
  if fp.checkpoint_kind == fingerprint_lib.CLASSIFICATION and ctype in ("detection", "full"):
    return [
      Finding(
        "checkpoint_type_mismatch",
        findings.ERROR,
        f'fine_tune_checkpoint_type is "{ctype}" but the checkpoint is a classification '
        "checkpoint (root object 'feature_extractor').",
        detail=(
          f"\"{ctype}\" restores root object 'model'; this checkpoint's root holds "
          f"{', '.join(fp.root_objects)}."
        ),
        fix='Set fine_tune_checkpoint_type: "classification"',
        stock_outcome=(
          "RuntimeError: the checkpoint has variables prefixed with "
          "'feature_extractor' (deprecated for \"detection\")"
        ),
      )
    ]
  return []


def _dummy_computation(config: pipeline_config.FineTuneConfig) -> list[Finding]:
  if config.effective_checkpoint_type != "classification" or config.run_dummy_computation:
    return []
  return [
    Finding(
      "dummy_computation_disabled",
      findings.ERROR,
      "run_fine_tune_checkpoint_dummy_computation is false, so the classification "
      "backbone is not built when the restore map is made.",
      detail=f"train_config in {config.path}",
      fix="Set run_fine_tune_checkpoint_dummy_computation: true (or remove the line).",
      stock_outcome=(
        "TypeError: restore_map was expected to return a (str -> Model) "
        "mapping, but we received a (str -> NoneType) mapping instead."
      ),
    )
  ]


# The scopes each meta-architecture's restore_from_objects(type) asks for.
_RESTORE_SCOPES = {
  ("ssd", "detection"): ("model/_feature_extractor/",),
  ("center_net", "detection"): ("model/_feature_extractor/",),
  ("faster_rcnn", "detection"): (
    "model/_feature_extractor_for_proposal_features/",
    "model/_feature_extractor_for_box_classifier_features/",
  ),
}
# Scopes of a model_main_tf2 checkpoint that are not a feature extractor.
_KNOWN_SCOPES = frozenset(
  {
    "_box_predictor",
    "_first_stage_box_predictor",
    "_first_stage_box_predictor_first_conv",
    "_mask_rcnn_box_predictor",
    "_prediction_head_dict",
    "_feature_extractor",
    "_feature_extractor_for_proposal_features",
    "_feature_extractor_for_box_classifier_features",
  }
)


def _diagnose_restore_scopes(
  config: pipeline_config.FineTuneConfig, inv: inventory.Inventory, fp: fingerprint_lib.Fingerprint
) -> list[Finding]:
  """The scopes the restore map asks for must be in the checkpoint."""
  ctype = config.effective_checkpoint_type
  expected = _RESTORE_SCOPES.get((config.meta_architecture, ctype))
  if not expected or fp.checkpoint_kind != fingerprint_lib.DETECTION:
    return []
  keys = [v.key for v in inv.of_kind(inventory.MODEL)]
  absent = [p for p in expected if not any(k.startswith(p) for k in keys)]
  if not absent:
    return []
  scopes: dict[str, int] = {}
  for k in keys:
    parts = k.split("/")
    if parts[0] == "model" and len(parts) > 2:
      scopes[parts[1]] = scopes.get(parts[1], 0) + 1
  unknown = {s: n for s, n in scopes.items() if s not in _KNOWN_SCOPES}
  there = ", ".join(f"model/{s}/ ({n} values)" for s, n in sorted(scopes.items()))
  renames = []
  if len(absent) == 1 and len(unknown) == 1:
    ((scope, count),) = unknown.items()
    renames = [{"old": f"model/{scope}/", "new": absent[0], "count": count}]
  return [
    Finding(
      "restore_scope_missing",
      findings.ERROR,
      f'fine_tune_checkpoint_type "{ctype}" restores {", ".join(absent)}, which the '
      "checkpoint does not have" + (": its scope was renamed." if renames else "."),
      detail=f"the checkpoint's scopes: {there or 'none'}",
      fix=(
        f"Rewrite the checkpoint's names: '{renames[0]['old']}' -> '{renames[0]['new']}' "
        "(or save from a model whose attribute carries the expected name)."
        if renames
        else "Use a checkpoint saved by the OD API from this meta-architecture."
      ),
      stock_outcome=_STOCK_UNBOUND.format(n="N"),
      data={"renames": renames} if renames else {},
    )
  ]


def architecture_findings(
  config: pipeline_config.FineTuneConfig, fp: fingerprint_lib.Fingerprint
) -> list[Finding]:
  """The architecture findings of `fp` against `config` (also for model_dir's checkpoint)."""
  return _diagnose_architecture(config, fp)


def _diagnose_architecture(
  config: pipeline_config.FineTuneConfig, fp: fingerprint_lib.Fingerprint
) -> list[Finding]:
  """The fingerprint's architecture against the config's: the meta-architecture
  first (nothing else compares across them), then each part."""
  mismatch = _meta_architecture(config, fp)
  if mismatch:
    return mismatch
  checks = (_feature_extractor, _neck, _depth_multiplier, _num_classes)
  return [finding for check in checks for finding in check(config, fp)]


def _architecture_error(
  code: str,
  title: str,
  *,
  detail: str,
  fix: str,
  stock_outcome: str = _STOCK_UNBOUND.format(n="N"),
  data: dict | None = None,
) -> list[Finding]:
  """The finding of a part of the checkpoint's architecture that the config does not build."""
  return [
    Finding(
      code,
      findings.ERROR,
      title,
      detail=detail,
      fix=fix,
      stock_outcome=stock_outcome,
      data=data or {},
    )
  ]


def _ssd_parts_compare(
  config: pipeline_config.FineTuneConfig, fp: fingerprint_lib.Fingerprint
) -> bool:
  """Whether the checkpoint's neck and depth multiplier can be held against the
  config's: both are SSDs with the same feature extractor."""
  return (
    config.meta_architecture == "ssd"
    and config.feature_extractor_type in fp.feature_extractor_types
  )


def _meta_architecture(
  config: pipeline_config.FineTuneConfig, fp: fingerprint_lib.Fingerprint
) -> list[Finding]:
  if fp.meta_architecture and fp.meta_architecture != config.meta_architecture:
    return _architecture_error(
      "meta_architecture_mismatch",
      f"The checkpoint is a {fp.describe()} model; the config builds a "
      f"{config.meta_architecture} model.",
      detail="; ".join(fp.evidence),
      fix=(
        f"Use a {config.meta_architecture} checkpoint, or a config for "
        f"{fp.meta_architecture} (feature_extractor.type: "
        f"{', '.join(fp.feature_extractor_types) or 'see the zoo'})."
      ),
    )
  return []


def _feature_extractor(
  config: pipeline_config.FineTuneConfig, fp: fingerprint_lib.Fingerprint
) -> list[Finding]:
  if fp.feature_extractor_types and config.feature_extractor_type not in fp.feature_extractor_types:
    fits = " or ".join(f'"{t}"' for t in fp.feature_extractor_types)
    fix = (
      f"Set feature_extractor {{ type: {fits} }} (and a config for that model), or "
      f"point fine_tune_checkpoint at a {config.feature_extractor_type} checkpoint."
    )
    return _architecture_error(
      "feature_extractor_mismatch",
      f'The config\'s feature extractor "{config.feature_extractor_type}" does not match '
      f"the checkpoint, which is {fp.describe()}.",
      detail="; ".join(fp.evidence),
      fix=fix,
      stock_outcome=(
        f"{_STOCK_SHAPE_MISMATCH} (or the 'not bound to checkpointed values' AssertionError)"
      ),
      data={"fitting_types": list(fp.feature_extractor_types)},
    )
  return []


def _neck(config: pipeline_config.FineTuneConfig, fp: fingerprint_lib.Fingerprint) -> list[Finding]:
  fpnlite = fp.neck == "fpnlite"
  if (
    fp.neck in ("fpn", "fpnlite")
    and _ssd_parts_compare(config, fp)
    and fpnlite != config.use_depthwise
  ):
    return _architecture_error(
      "neck_mismatch",
      f"The checkpoint's FPN is {'FPNLite (separable convolutions)' if fpnlite else 'a regular FPN'}; "
      f"the config asks for {'separable' if config.use_depthwise else 'regular'} convolutions.",
      detail=f"feature_extractor.use_depthwise: {str(config.use_depthwise).lower()}",
      fix=f"Set feature_extractor {{ use_depthwise: {str(fpnlite).lower()} }}",
    )
  return []


def _depth_multiplier(
  config: pipeline_config.FineTuneConfig, fp: fingerprint_lib.Fingerprint
) -> list[Finding]:
  if (
    fp.depth_multiplier is not None
    and _ssd_parts_compare(config, fp)
    and abs(fp.depth_multiplier - config.depth_multiplier) > 1e-6
  ):
    return _architecture_error(
      "depth_multiplier_mismatch",
      f"The checkpoint's depth multiplier is {fp.depth_multiplier:g}; the config's is "
      f"{config.depth_multiplier:g}.",
      detail="; ".join(fp.evidence),
      fix=f"Set feature_extractor {{ depth_multiplier: {fp.depth_multiplier:g} }}",
      stock_outcome=_STOCK_SHAPE_MISMATCH,
    )
  return []


def _num_classes(
  config: pipeline_config.FineTuneConfig, fp: fingerprint_lib.Fingerprint
) -> list[Finding]:
  out: list[Finding] = []
  ctype = config.effective_checkpoint_type
  classes = fp.num_classes(config.add_background_class)
  if classes is not None and classes != config.num_classes:
    heads_restored = ctype == "full"
    out.append(
      Finding(
        "num_classes_differ",
        findings.ERROR if heads_restored else findings.INFO,
        f"The checkpoint was trained for {classes} classes; the config has {config.num_classes}.",
        detail=("; ".join(e for e in fp.evidence if "head" in e)),
        fix=(
          f'With fine_tune_checkpoint_type "full" the heads must match: set '
          f'num_classes: {classes}, or use "detection" to restore all but the heads.'
          if heads_restored
          else ""
        ),
        stock_outcome=(
          _STOCK_SHAPE_MISMATCH
          if heads_restored
          else f'expected under "{ctype}": the heads are not restored and start fresh'
        ),
      )
    )
  return out
