"""Diagnoses of the checkpoint from its metadata alone (no TF).

These are the checks `od-guard check --static` runs in milliseconds, after
`fine_tune_path` found the checkpoint: its format and version, whether
`fine_tune_checkpoint_type` fits the checkpoint's root objects and scopes,
and (`architecture`) whether its fingerprint fits the configured
architecture. Each finding
names the cause and the exact change that fixes it, and, where it is known,
what stock model_main_tf2 does instead.
"""

from __future__ import annotations

from od_guard.checkpoint import fileio
from od_guard.checkpoint import inventory
from od_guard.odapi import architecture
from od_guard.odapi import config as pipeline_config
from od_guard.restore import findings
from od_guard.restore import fingerprint as fingerprint_lib

Finding = findings.Finding
_STOCK_UNBOUND = architecture.STOCK_UNBOUND


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
  out.extend(architecture.diagnose(config, fp))
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


# Fields a meta-architecture section of a zoo config writes (ssd, faster_rcnn,
# center_net), as far as the detail of model_section_incomplete names them.
_SECTION_FIELDS = (
  "num_classes",
  "image_resizer",
  "feature_extractor",
  "box_coder",
  "matcher",
  "anchor_generator",
  "box_predictor",
  "first_stage_anchor_generator",
  "object_center_params",
  "post_processing",
)


def _has(section, name: str) -> bool:
  try:
    return section.HasField(name)
  except ValueError:  # protobuf: not a field of this meta-architecture
    return False


def diagnose_model_section(message) -> list[Finding]:
  """The config's model section as the OD API's builder needs it: a
  meta-architecture without a feature extractor cannot be built.

  The usual cause (tensorflow/models#10156): a notebook assigns
  `pipeline_config.model.ssd.num_classes` on a Faster R-CNN (or CenterNet)
  config; `model` is a protobuf oneof, so the assignment switches it to an
  empty `ssd` section and clears the original one.

  Args:
    message: the parsed TrainEvalPipelineConfig.
  """
  model = getattr(message, "model", None)
  which = model.WhichOneof("model") if model is not None else None
  if not which:
    return []
  arch = getattr(model, which)
  try:
    has_extractor = arch.HasField("feature_extractor")
  except (AttributeError, ValueError):  # a schema that does not know the field: nothing to say
    return []
  if has_extractor:
    # A feature_extractor without a type may hide a misspelt field where no
    # schema checked the names: only a missing section is certain.
    return []
  # HasField by name works with the OD API's messages and od_guard's own reader.
  written = [n for n in _SECTION_FIELDS if _has(arch, n)]
  only_classes = written == ["num_classes"]
  return [
    Finding(
      "model_section_incomplete",
      findings.ERROR,
      f"The config's model.{which} has no feature_extractor: the OD API cannot build it"
      + (
        f" (model.{which} holds only num_classes: a script that sets "
        f"model.{which}.num_classes on a config of another meta-architecture replaces "
        "that section with this empty one)."
        if only_classes
        else "."
      ),
      detail=f"model.{which} sets: {', '.join(written) or 'nothing'}",
      fix=(
        "Set num_classes inside the config's own meta-architecture (e.g. "
        "pipeline_config.model.faster_rcnn.num_classes for a Faster R-CNN config), "
        "starting again from the zoo's pipeline.config."
        if only_classes
        else f"Give model.{which} a feature_extractor {{ type: ... }} (the zoo config's)."
      ),
      stock_outcome=(
        "ValueError:  is not supported for tf version 2. (model_builder, before step one; "
        "measured: exit 1 after 10 s)"
      ),
    )
  ]
