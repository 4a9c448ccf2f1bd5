"""The restore preflight for OD API fine-tunes, in two tiers, through the one
restore pipeline (`od_guard.pipeline`).

* `check_static` reads the pipeline.config and the checkpoint's index (and
  object graph) and imports no TensorFlow: path mistakes, format and version,
  fine_tune_checkpoint_type against the checkpoint's root objects, the
  architecture fingerprint against the config, num_classes.
* `check` adds the model-built tier: the model is built by the OD API under
  the training strategy, its restore map is matched against the checkpoint,
  and every variable's fate is known before step one.

    from od_guard import odapi
    report = odapi.check("pipeline.config", model_dir="train")
    if report.verdict.failed:
      print(od_guard.report.render.render_text(report))
"""

from __future__ import annotations

import dataclasses

from od_guard import errors
from od_guard import pipeline
from od_guard.checkpoint import inventory
from od_guard.odapi import config as pipeline_config
from od_guard.odapi import input_paths
from od_guard.odapi import model_dir as odapi_model_dir
from od_guard.odapi import static_diagnosis
from od_guard.report import record
from od_guard.restore import findings as findings_lib
from od_guard.restore import fingerprint as fingerprint_lib
from od_guard.restore import policy as policy_lib

# Static errors after which the model tier cannot say more.
_NO_MODEL_TIER = frozenset(
  {
    "placeholder_path",
    "tf1_checkpoint",
    "checkpoint_not_found",
    "windows_path_separator",
    "checkpoint_subdir_missing",
    "tf1_checkpoint_name",
    "tf1_feature_extractor",
  }
)
# Static guesses about the architecture: a clean model-built match overrules them.
_ARCHITECTURE_GUESSES = frozenset(
  {
    "meta_architecture_mismatch",
    "feature_extractor_mismatch",
    "neck_mismatch",
    "depth_multiplier_mismatch",
  }
)
_GOOGLE_INTERNAL = ("/cns/", "/placer/", "/bigstore/")
STOCK = "stock model_main_tf2"


@dataclasses.dataclass
class _Read:
  """What the read stage established: the config, the checkpoint, findings."""

  message: object
  config: pipeline_config.FineTuneConfig
  inventory: inventory.Inventory | None = None
  fingerprint: fingerprint_lib.Fingerprint | None = None
  found: list[findings_lib.Finding] = dataclasses.field(default_factory=list)
  not_checked: list[str] = dataclasses.field(default_factory=list)


def _not_found(path: str, e: errors.CheckpointNotFoundError) -> findings_lib.Finding:
  internal = path.startswith(_GOOGLE_INTERNAL)
  return findings_lib.Finding(
    "checkpoint_not_found",
    findings_lib.ERROR,
    "fine_tune_checkpoint names no checkpoint"
    + (" (a Google-internal path the zoo config kept)." if internal else "."),
    detail=e.what,
    fix=(
      "Download the model from the TF2 Detection Zoo and point at its checkpoint/ckpt-0."
      if internal
      else e.fix
    ),
    stock_outcome="fails after building the model and the input pipeline",
  )


def _read(
  config_path: str,
  checkpoint: str | None,
  model_dir: str | None,
  timer: pipeline.Timer,
  object_graph: str,
  training: bool = True,
) -> _Read:
  """The read stage: the config, the checkpoint's metadata, the static diagnoses."""
  with timer.phase("read"):
    message, text = pipeline_config.parse_with_text(config_path)
    read = _Read(message, pipeline_config.read(config_path, message, text=text))
    read.not_checked.extend(pipeline_config.not_checked(message))
  with timer.phase("static"):
    found, ckpt_path = static_diagnosis.diagnose_path(
      read.config, checkpoint=checkpoint, model_dir=model_dir
    )
    read.found.extend(found)
    read.found.extend(odapi_model_dir.diagnose(model_dir, read.config, training=training))
    read.found.extend(input_paths.diagnose(read.config))
    if ckpt_path is None:
      return read
    try:
      read.inventory = inventory.read_inventory(ckpt_path, object_graph=object_graph)
    except errors.CheckpointNotFoundError as e:
      read.found.append(_not_found(ckpt_path, e))
      return read
    except errors.CorruptCheckpointError as e:
      from od_guard.restore import value_health

      read.found.append(value_health.unreadable(e.what, e.received))
      return read
    read.fingerprint = fingerprint_lib.fingerprint(read.inventory)
    read.found.extend(
      static_diagnosis.diagnose_checkpoint(read.config, read.inventory, read.fingerprint)
    )
    if read.inventory.data_shards == inventory.SHARDS_MISSING:
      read.not_checked.append(
        "tensor values and the object graph (the data shard is missing); "
        "the match used the index keys"
      )
  return read


def _verify_values(read: _Read, timer: pipeline.Timer, restored=None, keep=None) -> None:
  """Reads every saved tensor once (CRC32C, NaN / Inf); findings say which the
  restore assigns (`restored` keys; None: every model value). With `keep`, the
  same read fingerprints the values for the check of the real restore."""
  from od_guard.checkpoint import verify
  from od_guard.restore import value_health

  inv = read.inventory
  if inv is None or inv.format not in (inventory.TF2_OBJECT_BASED, inventory.TF1_NAME_BASED):
    return
  if inv.data_shards == inventory.SHARDS_MISSING:
    return  # data_shard_missing says so
  with timer.phase("values"):
    report = verify.verify(inv.prefix, digests=keep is not None)
  if keep is not None:
    keep.digests = report.digests
  scope = "every saved value" if restored is None else f"{len(restored)} restored"
  read.found.extend(value_health.diagnose(report, restored=restored, scope=scope))


def _conclude(read: _Read, timer: pipeline.Timer, policy, **more) -> record.Report:
  return pipeline.conclude(
    inventory=read.inventory,
    found=read.found,
    policy=policy,
    fingerprint=read.fingerprint,
    timings=timer.timings,
    not_checked=read.not_checked,
    config=read.config.to_dict(),
    config_summary=read.config.summary(),
    stock_name=STOCK,
    **more,
  )


def check_static(
  config_path: str,
  *,
  checkpoint: str | None = None,
  model_dir: str | None = None,
  policy: policy_lib.Policy | None = None,
  values: bool = False,
  training: bool = False,
) -> record.Report:
  """The static tier: config and checkpoint metadata, no TensorFlow.

  Args:
    config_path: the pipeline.config.
    checkpoint: overrides train_config.fine_tune_checkpoint.
    model_dir: the training output directory (checked for stale checkpoints).
    policy: defaults to the 'default' preset.
    values: also read every saved tensor (integrity, NaN / Inf); every model
      value counts as restored.
    training: the verdict gates a training run (index-only checkpoints fail).

  Raises:
    OdGuardError: the config cannot be read (a malformed checkpoint is a
      finding, not an exception, when the config names it).
  """
  timer = pipeline.Timer()
  read = _read(config_path, checkpoint, model_dir, timer, inventory.OBJECT_GRAPH_SUMMARY)
  if values:
    _verify_values(read, timer)
  read.not_checked.append(
    "the model was not built: exact bindings, shapes of every variable "
    "and coverage need the full check (without --static)"
  )
  return _conclude(read, timer, policy or policy_lib.preset("default"), training=training)


def _model_tier_possible(read: _Read) -> bool:
  if read.inventory is None or read.inventory.format == inventory.TF1_NAME_BASED:
    return False
  return not {f.code for f in read.found if f.severity == findings_lib.ERROR} & _NO_MODEL_TIER


def check(
  config_path: str,
  *,
  checkpoint: str | None = None,
  model_dir: str | None = None,
  policy: policy_lib.Policy | None = None,
  strategy=None,
  training: bool = False,
  values: bool = True,
  keep=None,
) -> record.Report:
  """Both tiers: static checks, then the model built and matched.

  Args:
    config_path, checkpoint, model_dir, policy, training: as for `check_static`.
    strategy: the tf.distribute strategy training uses (default: the current).
    values: read every saved tensor after the match: damage or NaN / Inf in a
      value the restore assigns is an error, elsewhere a warning.
    keep: an `od_guard.odapi.model.Kept`: the built model (its add_summaries
      applied) is kept in it, not in the report, for training to reuse.

  Returns:
    The report. Its verdict decides; nothing is raised for problems found.

  Raises:
    OdGuardError: the config cannot be read, or the OD API cannot build it.
  """
  policy = policy or policy_lib.preset("default")
  timer = pipeline.Timer()
  read = _read(
    config_path, checkpoint, model_dir, timer, inventory.OBJECT_GRAPH_FULL, training=training
  )
  if read.inventory is not None and read.inventory.format == inventory.TF1_NAME_BASED:
    read.not_checked.append("the model-built match: the TF2 OD API refuses name-based checkpoints")
  if not _model_tier_possible(read):
    return _conclude(read, timer, policy, training=training)
  # The model tier's modules load only when it runs: --static stays light.
  from od_guard.odapi import model as odapi_model
  from od_guard.restore import live_graph
  from od_guard.restore import strategies

  with timer.phase("import"):
    message = pipeline_config.odapi_message(config_path, read.message)  # the builder's class
    tf, _ = odapi_model.import_odapi()
  strategy = strategy or tf.distribute.get_strategy()
  with timer.phase("build"):
    model = odapi_model.build(
      message, strategy, add_summaries=True if keep is None else keep.add_summaries
    )
  if keep is not None:
    keep.model, keep.model_config, keep.strategy = model, message.model, strategy
  restore = None
  with timer.phase("match"):
    ctype = read.config.effective_checkpoint_type
    try:
      roots = odapi_model.restore_roots(model, ctype)
    except odapi_model.ModelBuildError:
      roots = None  # checkpoint_type_unsupported says why
    if roots is not None:
      restore, found = pipeline.predict(
        live_graph.capture(roots, model={"model": model}),
        read.inventory,
        policy=policy,
        coverage=True,
        root_hint=f'fine_tune_checkpoint_type "{ctype}" restores '
        + ", ".join(f"'{k}'" for k in roots),
      )
      read.found = _overrule_guesses(read.found, restore) + list(found)
  if values:
    _verify_values(
      read, timer, None if restore is None else {b.key for b in restore.restored}, keep
    )
  return _conclude(
    read, timer, policy, restore=restore, training=training, strategy=strategies.describe(strategy)
  )


def _overrule_guesses(found: list, restore) -> list:
  """The model tier built the model and every requested variable binds with no
  shape mismatch: static architecture guesses become facts."""
  if restore is None or restore.missing or restore.shape_mismatches or not restore.restored:
    return found
  return [
    dataclasses.replace(
      f,
      severity=findings_lib.INFO,
      title=f"{f.title} (overruled: the built model's restore binds every variable)",
      fix="",
    )
    if f.code in _ARCHITECTURE_GUESSES and f.severity == findings_lib.ERROR
    else f
    for f in found
  ]


def _eval_pending(checkpoint_dir: str, why: str) -> findings_lib.Finding:
  return findings_lib.Finding(
    "eval_checkpoint_pending",
    findings_lib.INFO,
    f"No checkpoint to evaluate in {checkpoint_dir} yet: evaluation waits for one.",
    detail=why,
    fix="",
    stock_outcome="waits for a checkpoint (checkpoints_iterator), up to --eval_timeout",
  )


def _for_eval(found: list[findings_lib.Finding], prefix: str) -> list[findings_lib.Finding]:
  """The static findings, with the fixes evaluation needs: evaluation restores
  the whole model from a checkpoint of a training run, so a head of another
  size is fixed by evaluating with that run's num_classes (the fine-tune
  settings the training fix names do not apply)."""
  return [
    dataclasses.replace(
      f,
      fix=(
        "Evaluate with the config the checkpoint was trained with: set num_classes to "
        "the training run's value in this pipeline.config, or point --checkpoint_dir at "
        f"a training run of this config (the checkpoint is {prefix})."
      ),
      stock_outcome=(
        "restores the rest without an error, then fails during evaluation (measured "
        "here: a 5-class eval of a 3-class checkpoint died in NMS after 1 min 55 s)"
      ),
    )
    if f.code == "num_classes_differ" and f.severity == findings_lib.ERROR
    else f
    for f in found
  ]


def check_eval(
  config_path: str,
  checkpoint_dir: str,
  *,
  policy: policy_lib.Policy | None = None,
  strategy=None,
  values: bool = True,
) -> record.Report:
  """The preflight of model_main_tf2's evaluation (`--checkpoint_dir`).

  model_lib_v2.eval_continuously builds the model as for training and restores
  `tf.train.Checkpoint(step=..., model=detection_model, optimizer=...)` from the
  latest checkpoint in `checkpoint_dir` with `expect_partial()`: a variable the
  checkpoint lacks stays at its random initial value, silently; a shape that
  differs raises when the deferred restore reaches it. The check therefore
  matches that checkpoint against the whole model ("full" restore semantics).

  Args:
    config_path: the pipeline.config evaluation builds the model from.
    checkpoint_dir: model_main_tf2's --checkpoint_dir (training's model_dir).
    policy: defaults to the 'default' preset.
    strategy: the tf.distribute strategy (default: the current one).
    values: read every saved tensor after the match (damage, NaN / Inf).

  Returns:
    The report. With no checkpoint in `checkpoint_dir` yet, it says so
    (`eval_checkpoint_pending`) and does not fail: evaluation waits.

  Raises:
    OdGuardError: the config cannot be read, or the OD API cannot build it.
  """
  policy = policy or policy_lib.preset("default")
  timer = pipeline.Timer()
  with timer.phase("read"):
    message, text = pipeline_config.parse_with_text(config_path)
    prefix, why = odapi_model_dir.latest_checkpoint(checkpoint_dir)
    # Evaluation restores the whole model from a V2 checkpoint: the config's
    # fine-tune settings do not apply, "full" semantics do.
    config = dataclasses.replace(
      pipeline_config.read(config_path, message, text=text),
      fine_tune_checkpoint=prefix or "",
      fine_tune_checkpoint_type="full",
      effective_checkpoint_type="full",
      fine_tune_checkpoint_version="V2",
      version_set=True,
      run_dummy_computation=True,
    )
    read = _Read(message, config)
    read.not_checked.extend(pipeline_config.not_checked(message))
  if prefix is None:
    read.found.append(_eval_pending(checkpoint_dir, why))
    return _conclude(read, timer, policy)
  with timer.phase("static"):
    try:
      read.inventory = inventory.read_inventory(prefix, object_graph=inventory.OBJECT_GRAPH_FULL)
    except errors.CheckpointNotFoundError as e:
      read.found.append(_not_found(prefix, e))
      return _conclude(read, timer, policy)
    read.fingerprint = fingerprint_lib.fingerprint(read.inventory)
    read.found.extend(
      _for_eval(
        static_diagnosis.diagnose_checkpoint(read.config, read.inventory, read.fingerprint),
        prefix,
      )
    )
  if not _model_tier_possible(read):
    return _conclude(read, timer, policy)
  from od_guard.odapi import model as odapi_model
  from od_guard.restore import live_graph
  from od_guard.restore import strategies

  with timer.phase("import"):
    built_from = pipeline_config.odapi_message(config_path, read.message)
    tf, _ = odapi_model.import_odapi()
  strategy = strategy or tf.distribute.get_strategy()
  with timer.phase("build"):
    model = odapi_model.build(built_from, strategy)  # is_training=True, as eval builds it
  with timer.phase("match"):
    whole = {"model": model}
    restore, found = pipeline.predict(
      live_graph.capture(whole, model=whole),
      read.inventory,
      policy=policy,
      coverage=True,
      root_hint="evaluation restores 'model' (the whole detection model)",
    )
    read.found = _overrule_guesses(read.found, restore) + list(found)
  if values:
    _verify_values(read, timer, {b.key for b in restore.restored})
  return _conclude(read, timer, policy, restore=restore, strategy=strategies.describe(strategy))
