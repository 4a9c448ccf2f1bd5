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

import contextlib
import dataclasses
import os
from typing import NamedTuple

from od_guard import errors
from od_guard import pipeline
from od_guard.checkpoint import fileio
from od_guard.checkpoint import inventory
from od_guard.odapi import config as pipeline_config
from od_guard.odapi import fine_tune_path
from od_guard.odapi import input_paths
from od_guard.odapi import model_dir as odapi_model_dir
from od_guard.odapi import static_diagnosis
from od_guard.report import record
from od_guard.restore import decide
from od_guard.restore import findings as findings_lib
from od_guard.restore import fingerprint as fingerprint_lib
from od_guard.restore import policy as policy_lib

_GOOGLE_INTERNAL = ("/cns/", "/placer/", "/bigstore/")
STOCK = "stock model_main_tf2"


class _Parsed(NamedTuple):
  """The pipeline.config as the read stage parsed it."""

  message: object
  config: pipeline_config.FineTuneConfig


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


def read(
  config_path: str,
  *,
  checkpoint: str | None = None,
  model_dir: str | None = None,
  training: bool = False,
  object_graph: str = inventory.OBJECT_GRAPH_FULL,
  num_train_steps: int | None = None,
  use_tpu: bool = False,
  tpu_name: str | None = None,
) -> pipeline.Static:
  """The read stage: the config, the checkpoint's metadata, the static diagnoses.

  No TensorFlow. The result feeds `check_static` or `check` (`static=`), so a
  caller that wants the static verdict first (the drop-in) reads once.

  Args:
    config_path, checkpoint, model_dir, training: as for `check_static`.
    object_graph: how much of the object graph to read (the model tier needs
      all of it).
    num_train_steps: model_main_tf2's --num_train_steps, which overrides the
      config's num_steps (None: the config's).
    use_tpu, tpu_name: model_main_tf2's --use_tpu and --tpu_name (the paths a
      Cloud TPU reads must be gs://).

  Raises:
    OdGuardError: the config cannot be read.
  """
  static = pipeline.Static()
  timer = static.timer
  with timer.phase("read"):
    message, text = pipeline_config.parse_with_text(config_path)
    config = pipeline_config.read(config_path, message, text=text)
    static.context = _Parsed(message, config)
    static.config, static.config_summary = config.to_dict(), config.summary()
    static.not_checked.extend(pipeline_config.not_checked(message))
  with timer.phase("static"):
    found, ckpt_path = fine_tune_path.diagnose(config, checkpoint=checkpoint, model_dir=model_dir)
    static.found.extend(found)
    static.found.extend(
      odapi_model_dir.diagnose(
        model_dir, config, training=training, num_train_steps=num_train_steps
      )
    )
    static.found.extend(input_paths.diagnose(config))
    if use_tpu:
      static.found.extend(input_paths.diagnose_tpu(config, model_dir, tpu_name=tpu_name))
    static.found.extend(static_diagnosis.diagnose_model_section(message))
    if ckpt_path is not None:
      _read_checkpoint(static, config, ckpt_path, object_graph)
  return static


def _read_checkpoint(
  static: pipeline.Static,
  config: pipeline_config.FineTuneConfig,
  path: str,
  object_graph: str,
  diagnose=static_diagnosis.diagnose_checkpoint,
) -> None:
  """The checkpoint's metadata and the static diagnoses of it, into `static`
  (an unreadable checkpoint is a finding)."""
  try:
    static.inventory = inventory.read_inventory(path, object_graph=object_graph)
  except errors.CheckpointNotFoundError as e:
    static.found.append(_not_found(path, e))
    return
  except errors.CorruptCheckpointError as e:
    from od_guard.restore import value_health

    static.found.append(value_health.unreadable(e.what, e.received))
    return
  static.fingerprint = fingerprint_lib.fingerprint(static.inventory)
  static.found.extend(diagnose(config, static.inventory, static.fingerprint))
  if static.inventory.data_shards == inventory.SHARDS_MISSING:
    static.not_checked.append(
      "tensor values and the object graph (the data shard is missing); "
      "the match used the index keys"
    )


def _model_tier_possible(static: pipeline.Static) -> bool:
  if static.inventory is None or static.inventory.format == inventory.TF1_NAME_BASED:
    return False
  return decide.model_tier_possible(static.found)


def _values(static: pipeline.Static, keep=None, *, model_tier: bool = False) -> pipeline.ValuesFn:
  """The values check: reads every saved tensor once (CRC32C, NaN / Inf);
  findings say which the restore assigns (None: every model value). With
  `keep`, the same read fingerprints the values for the check of the real
  restore. With `model_tier`, only where the model tier could run."""

  def check_values(restored: frozenset[str] | None) -> list[findings_lib.Finding]:
    from od_guard.checkpoint import verify
    from od_guard.restore import value_health

    inv = static.inventory
    if model_tier and not _model_tier_possible(static):
      return []
    if inv is None or inv.format not in (inventory.TF2_OBJECT_BASED, inventory.TF1_NAME_BASED):
      return []
    if inv.data_shards == inventory.SHARDS_MISSING:
      return []  # data_shard_missing says so
    with static.timer.phase("values"):
      report = verify.verify(inv.prefix, digests=keep is not None)
    if keep is not None:
      keep.digests = report.digests
    scope = "every saved value" if restored is None else f"{len(restored)} restored"
    return value_health.diagnose(report, restored=restored, scope=scope)

  return check_values


def _model_tier(
  config_path: str,
  static: pipeline.Static,
  strategy,
  *,
  keep=None,
  evaluation: bool = False,
) -> pipeline.CaptureFn:
  """The model tier: the model built by the OD API under `strategy` (default:
  the current one), as training (or evaluation) builds it, and the live graph
  its restore walks."""

  def capture() -> pipeline.Capture | None:
    if not _model_tier_possible(static):
      return None
    # The model tier's modules load only when it runs: --static stays light.
    from od_guard.odapi import compat as odapi_compat
    from od_guard.odapi import model as odapi_model
    from od_guard.restore import live_graph
    from od_guard.restore import strategies

    timer = static.timer
    with timer.phase("import"):
      # The compat layer before the OD API's protos load: the builder's message
      # class and od_guard's config reading then share one schema.
      odapi_compat.install()
      message = pipeline_config.odapi_message(config_path, static.context.message)
      tf, _ = odapi_model.import_odapi()
    built_under = strategy or tf.distribute.get_strategy()
    pending = [d for d in odapi_model.downloads(message.model) if not d.cached]
    with timer.phase("build"):  # is_training=True, as evaluation builds it too
      try:
        model = odapi_model.build(
          message, built_under, add_summaries=True if keep is None else keep.add_summaries
        )
      except odapi_model.WorkerLostError:
        raise  # not the config's problem: the drop-in says so
      except odapi_model.ModelBuildError as e:
        # A finding, judged with the static ones: a static diagnosis that
        # explains it (decide.EXPLAINED_BY) leads the verdict.
        return pipeline.Capture(
          None,
          strategy=strategies.describe(built_under),
          found=[*map(_download, pending), _build_failed(e, static, pending)],
          shims=odapi_compat.active(),
        )
    if keep is not None:
      keep.model, keep.model_config, keep.strategy = model, message.model, built_under
    described = strategies.describe(built_under)
    whole = {"model": model}
    with timer.phase("match"):
      if evaluation:
        roots, hint = whole, "evaluation restores 'model' (the whole detection model)"
      else:
        ctype = static.context.config.effective_checkpoint_type
        try:
          roots = odapi_model.restore_roots(model, ctype)
        except odapi_model.ModelBuildError:
          return pipeline.Capture(  # checkpoint_type_unsupported says why
            None, strategy=described, shims=odapi_compat.active()
          )
        hint = f'fine_tune_checkpoint_type "{ctype}" restores ' + ", ".join(f"'{k}'" for k in roots)
      graph = live_graph.capture(roots, model=whole)
    return pipeline.Capture(
      graph,
      root_hint=hint,
      strategy=described,
      found=[_download(d) for d in pending],
      shims=odapi_compat.active(),
    )

  return capture


def _download(d) -> findings_lib.Finding:
  """A download the model build makes (`odapi_model.Download`), not cached here."""
  name = os.path.basename(d.cache)
  return findings_lib.Finding(
    "model_build_downloads",
    findings_lib.INFO,
    f"Building this model downloads {name} (Keras Applications ImageNet weights, which "
    "the fine-tune checkpoint then overwrites); it is not cached here.",
    detail=f"{d.url} -> {d.cache}",
    fix=f"For offline runs, put the file at {d.cache} (from a machine that has it).",
    stock_outcome="downloads it at every build that does not find it; offline: "
    f"Exception: URL fetch failure on {d.url}",
    data={"url": d.url, "cache": d.cache},
  )


def _build_failed(
  e: errors.OdGuardError, static: pipeline.Static, pending=()
) -> findings_lib.Finding:
  """The OD API's builder refused the config: the error, as evidence, after
  what the static tier found (its errors are named first). A download that
  failed says which file to put where."""
  received = e.received or e.what
  fetch = next((d for d in pending if "URL fetch failure" in received), None)
  if fetch is not None:
    return findings_lib.Finding(
      "model_build_failed",
      findings_lib.ERROR,
      f"The model build could not download {os.path.basename(fetch.cache)} (no network?): "
      "the OD API's builder fetches Keras Applications weights for this extractor.",
      detail=received,
      fix=(
        f"Put {os.path.basename(fetch.cache)} at {fetch.cache} (copy it from a machine "
        f"with network, or download {fetch.url}); the fine-tune checkpoint then "
        "overwrites those weights."
      ),
      stock_outcome=f"Exception: URL fetch failure on {fetch.url}, before step one",
      data={"static_errors": [], "download": fetch.url, "cache": fetch.cache},
    )
  known = [f for f in static.found if f.severity == findings_lib.ERROR]
  return findings_lib.Finding(
    "model_build_failed",
    findings_lib.ERROR,
    "The OD API could not build the configured model"
    + (
      f", as the static diagnosis predicts ({', '.join(sorted({f.code for f in known}))})."
      if known
      else "."
    ),
    detail=received,
    fix=known[0].fix if known else e.fix,
    stock_outcome="fails with the same error when it builds the model, before step one",
    data={"static_errors": sorted({f.code for f in known})},
  )


def check_static(
  config_path: str,
  *,
  checkpoint: str | None = None,
  model_dir: str | None = None,
  policy: policy_lib.Policy | None = None,
  values: bool = False,
  training: bool = False,
  static: pipeline.Static | None = None,
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
    static: the read stage, when the caller ran `read` already (then the
      arguments above that `read` takes are not used).

  Raises:
    OdGuardError: the config cannot be read (a malformed checkpoint is a
      finding, not an exception, when the config names it).
  """
  if static is None:
    static = read(
      config_path,
      checkpoint=checkpoint,
      model_dir=model_dir,
      training=training,
      object_graph=inventory.OBJECT_GRAPH_SUMMARY,
    )
  static = dataclasses.replace(
    static,
    not_checked=[
      *static.not_checked,
      "the model was not built: exact bindings, shapes of every variable "
      "and coverage need the full check (without --static)",
    ],
  )
  return pipeline.run(
    static,
    policy=policy or policy_lib.preset("default"),
    values=_values(static) if values else None,
    training=training,
    stock_name=STOCK,
  )


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
  static: pipeline.Static | None = None,
) -> record.Report:
  """Both tiers: static checks, then the model built and matched.

  Args:
    config_path, checkpoint, model_dir, policy, training: as for `check_static`.
    strategy: the tf.distribute strategy training uses (default: the current).
    values: read every saved tensor after the match: damage or NaN / Inf in a
      value the restore assigns is an error, elsewhere a warning.
    keep: an `od_guard.odapi.model.Kept`: the built model (its add_summaries
      applied) is kept in it, not in the report, for training to reuse.
    static: the read stage (`read`, with the full object graph), when the
      caller ran it already.

  Returns:
    The report. Its verdict decides; nothing is raised for problems found.

  Raises:
    OdGuardError: the config cannot be read, or the OD API cannot build it.
  """
  if static is None:
    static = read(config_path, checkpoint=checkpoint, model_dir=model_dir, training=training)
  if static.inventory is not None and static.inventory.format == inventory.TF1_NAME_BASED:
    static = dataclasses.replace(
      static,
      not_checked=[
        *static.not_checked,
        "the model-built match: the TF2 OD API refuses name-based checkpoints",
      ],
    )
  return pipeline.run(
    static,
    policy=policy or policy_lib.preset("default"),
    capture=_model_tier(config_path, static, strategy, keep=keep),
    coverage=True,
    values=_values(static, keep, model_tier=True) if values else None,
    training=training,
    stock_name=STOCK,
  )


def _eval_pending(checkpoint_dir: str, why: str) -> findings_lib.Finding:
  return findings_lib.Finding(
    "eval_checkpoint_pending",
    findings_lib.INFO,
    f"No checkpoint to evaluate in {checkpoint_dir} yet: evaluation waits for one.",
    detail=why,
    fix="",
    stock_outcome="waits for a checkpoint (checkpoints_iterator), up to --eval_timeout",
  )


def _for_eval(
  found: list[findings_lib.Finding], prefix: str, mode: str = "eval"
) -> list[findings_lib.Finding]:
  """The static findings, with the fixes evaluation (or the export) needs: it
  restores the whole model from a checkpoint of a training run, so a head of
  another size is fixed by using that run's num_classes (the fine-tune
  settings the training fix names do not apply)."""
  verb, flag = (
    ("Export", "--trained_checkpoint_dir")
    if mode == "export"
    else (
      "Evaluate",
      "--checkpoint_dir",
    )
  )
  return [
    dataclasses.replace(
      f,
      fix=(
        f"{verb} with the config the checkpoint was trained with: set num_classes to "
        f"the training run's value in this pipeline.config, or point {flag} at "
        f"a training run of this config (the checkpoint is {prefix})."
      ),
      stock_outcome=(
        "restores the rest without an error, then fails during evaluation (measured "
        "here: a 5-class eval of a 3-class checkpoint died in NMS after 1 min 55 s)"
        if mode != "export"
        else "exits 0 and writes a SavedModel, silently, without the checkpoint's class "
        "head (measured here: a 5-class export of a 3-class checkpoint, 98 s, no "
        "warning logged)"
      ),
    )
    if f.code == "num_classes_differ" and f.severity == findings_lib.ERROR
    else f
    for f in found
  ]


# Flags that only training reads: with --checkpoint_dir, stock model_main_tf2
# evaluates and ignores them (tensorflow/models#8883).
TRAINING_ONLY_FLAGS = (
  "checkpoint_every_n",
  "num_workers",
  "record_summaries",
  "use_tpu",
  "tpu_name",
  "num_steps_per_iteration",
)
EVAL, EXPORT = "eval", "export"
_FLAG = {EVAL: "--checkpoint_dir", EXPORT: "--trained_checkpoint_dir"}
_STOCK = {EVAL: STOCK, EXPORT: "stock exporter_main_v2"}


def _dir_missing(checkpoint_dir: str, mode: str) -> findings_lib.Finding:
  near = odapi_model_dir.nearest_checkpoint_dir(checkpoint_dir)
  return findings_lib.Finding(
    "checkpoint_dir_missing",
    findings_lib.ERROR,
    f"{_FLAG[mode]} {checkpoint_dir} does not exist"
    + (f"; {near} holds checkpoints." if near else "."),
    detail=f"{os.path.abspath(checkpoint_dir)} does not exist"
    + (f"; nearest directory with checkpoints: {near}" if near else ""),
    fix=(
      f"Use {_FLAG[mode]}={near}"
      if near
      else f"Point {_FLAG[mode]} at the training run's --model_dir"
    )
    + (" (the directory training wrote its checkpoints to)." if near is None else "."),
    stock_outcome=(
      "logs 'Waiting for new checkpoint' at the missing directory until --eval_timeout "
      "(default 3600 s), then exits 0 without evaluating"
      if mode == EVAL
      else "AssertionError: No checkpoint specified (save_path=None); nothing is being restored."
    ),
    data={"proposed": near},
  )


def _state_unusable(st: odapi_model_dir.State, mode: str) -> findings_lib.Finding:
  newest = st.newest or ""
  name = os.path.basename(newest)
  return findings_lib.Finding(
    "checkpoint_state_unusable",
    findings_lib.ERROR if mode == EXPORT else findings_lib.WARNING,
    f"{_FLAG[mode]} holds checkpoints, but its 'checkpoint' state file names none that "
    "exists here: "
    + (
      "nothing is restored."
      if mode == EXPORT
      else "evaluation waits until training writes a state file."
    ),
    detail=(
      f"{fileio.join(st.directory, 'checkpoint')} names {st.named!r}, which does not exist "
      "here (the exporter tries to restore it)"
      if mode == EXPORT and st.named
      else st.why
    )
    + f"; on disk: {', '.join(os.path.basename(p) for p in st.on_disk[-5:])}",
    fix=(
      f"Write {fileio.join(st.directory, 'checkpoint')} naming the checkpoint to use, "
      f'e.g. model_checkpoint_path: "{name}" (a relative name works after copying the '
      "directory to another machine)."
    ),
    stock_outcome=(
      "AssertionError: No checkpoint specified (save_path=None) when the state file is "
      "missing (measured: exit 1 after 64 s); NotFoundError 'Failed to find any matching "
      "files for <the named path>' when it names a path that is not here (exit 1, 16 s)"
      if mode == EXPORT
      else "logs 'Waiting for new checkpoint' until --eval_timeout, then exits 0"
    ),
    data={"proposed": newest, "named": st.named},
  )


def _dir_empty(checkpoint_dir: str) -> findings_lib.Finding:
  children = []
  with contextlib.suppress(errors.OdGuardError, OSError):
    children = sorted(fileio.listdir(checkpoint_dir))
  near = next(
    (
      fileio.join(checkpoint_dir, c)
      for c in children
      if odapi_model_dir.holds_checkpoints(fileio.join(checkpoint_dir, c))
    ),
    None,
  )
  return findings_lib.Finding(
    "checkpoint_dir_empty",
    findings_lib.ERROR,
    f"--trained_checkpoint_dir {checkpoint_dir} holds no checkpoint"
    + (f"; {near} does." if near else "."),
    detail=f"no checkpoint state file and no .index in {checkpoint_dir}",
    fix=(
      f"Use --trained_checkpoint_dir={near}."
      if near
      else "Point --trained_checkpoint_dir at the training run's --model_dir."
    ),
    stock_outcome="AssertionError: No checkpoint specified (save_path=None); nothing is being restored.",
    data={"proposed": near},
  )


def _eval_only(checkpoint_dir: str, given: list[str], fine_tune: str) -> findings_lib.Finding:
  why = []
  if given:
    why.append("training-only flags given: " + ", ".join(f"--{g}" for g in given))
  if fine_tune:
    why.append(f"--checkpoint_dir is the fine-tune checkpoint's directory ({fine_tune})")
  return findings_lib.Finding(
    "checkpoint_dir_eval_only",
    findings_lib.WARNING,
    "--checkpoint_dir makes this run evaluate only: it will not train.",
    detail="; ".join(why),
    fix=(
      "To train, drop --checkpoint_dir (fine_tune_checkpoint in the config names the "
      "checkpoint to start from); to evaluate, drop the training flags."
    ),
    stock_outcome="evaluates only; with no checkpoint there yet it waits ('Waiting for "
    "new checkpoint') until --eval_timeout",
    data={"flags": given, "fine_tune_dir": fine_tune},
  )


def _same_dir(a: str, b: str) -> bool:
  if not a or not b:
    return False
  if fileio.is_remote(a) or fileio.is_remote(b):
    return a.rstrip("/") == b.rstrip("/")
  return os.path.normpath(os.path.abspath(a)) == os.path.normpath(os.path.abspath(b))


def check_eval(
  config_path: str,
  checkpoint_dir: str,
  *,
  policy: policy_lib.Policy | None = None,
  strategy=None,
  values: bool = True,
  training_flags: tuple[str, ...] = (),
  mode: str = EVAL,
  model_tier: bool = True,
) -> record.Report:
  """The preflight of model_main_tf2's evaluation (`--checkpoint_dir`), or of
  exporter_main_v2 (`--trained_checkpoint_dir`, `mode=EXPORT`).

  model_lib_v2.eval_continuously builds the model as for training and restores
  `tf.train.Checkpoint(step=..., model=detection_model, optimizer=...)` from the
  latest checkpoint in `checkpoint_dir` with `expect_partial()`: a variable the
  checkpoint lacks stays at its random initial value, silently; a shape that
  differs raises when the deferred restore reaches it. exporter_lib_v2 restores
  `tf.train.Checkpoint(model=detection_model)` from its CheckpointManager's
  latest checkpoint the same way. The check therefore matches that checkpoint
  against the whole model ("full" restore semantics). Both resolve the
  directory through its `checkpoint` state file (`tf.train.latest_checkpoint`).

  Args:
    config_path: the pipeline.config evaluation builds the model from.
    checkpoint_dir: model_main_tf2's --checkpoint_dir (training's model_dir),
      or exporter_main_v2's --trained_checkpoint_dir.
    policy: defaults to the 'default' preset.
    strategy: the tf.distribute strategy (default: the current one).
    values: read every saved tensor after the match (damage, NaN / Inf).
    training_flags: the training-only flags the command line gave
      (`TRAINING_ONLY_FLAGS`): with them, a warning that the run only evaluates.
    mode: EVAL or EXPORT.
    model_tier: build the model and match it (False: the static tier only,
      no TensorFlow).

  Returns:
    The report. With no checkpoint in `checkpoint_dir` yet, evaluation says
    so (`eval_checkpoint_pending`) and does not fail: it waits. A directory
    that does not exist fails (`checkpoint_dir_missing`), and so does, for the
    export, one that names no checkpoint.

  Raises:
    OdGuardError: the config cannot be read.
  """
  policy = policy or policy_lib.preset("default")
  static = pipeline.Static()
  with static.timer.phase("read"):
    message, text = pipeline_config.parse_with_text(config_path)
    exists = fileio.isdir(checkpoint_dir)
    st = odapi_model_dir.state(checkpoint_dir) if exists else None
    prefix = st.prefix if st is not None else None
    as_written = pipeline_config.read(config_path, message, text=text)
    # Evaluation restores the whole model from a V2 checkpoint: the config's
    # fine-tune settings do not apply, "full" semantics do.
    config = dataclasses.replace(
      as_written,
      fine_tune_checkpoint=prefix or "",
      fine_tune_checkpoint_type="full",
      effective_checkpoint_type="full",
      fine_tune_checkpoint_version="V2",
      version_set=True,
      run_dummy_computation=True,
    )
    static.context = _Parsed(message, config)
    static.config, static.config_summary = config.to_dict(), config.summary()
    static.not_checked.extend(pipeline_config.not_checked(message))
  static.found.extend(static_diagnosis.diagnose_model_section(message))
  if mode == EVAL:
    fine_tune_dir = os.path.dirname(as_written.fine_tune_checkpoint or "")
    same = _same_dir(fine_tune_dir, checkpoint_dir)
    if training_flags or same:
      static.found.append(
        _eval_only(checkpoint_dir, list(training_flags), fine_tune_dir if same else "")
      )
  if st is None:
    static.found.append(_dir_missing(checkpoint_dir, mode))
  elif prefix is None and st.on_disk:
    static.found.append(_state_unusable(st, mode))
  elif prefix is None and mode == EXPORT:
    static.found.append(_dir_empty(checkpoint_dir))
  elif prefix is None:
    static.found.append(_eval_pending(checkpoint_dir, st.why))
  else:
    with static.timer.phase("static"):
      _read_checkpoint(
        static,
        config,
        prefix,
        inventory.OBJECT_GRAPH_FULL,
        diagnose=lambda *a: _for_eval(static_diagnosis.diagnose_checkpoint(*a), prefix, mode),
      )
  return pipeline.run(
    static,
    policy=policy,
    capture=_model_tier(config_path, static, strategy, evaluation=True) if model_tier else None,
    coverage=model_tier,
    values=_values(static, model_tier=True) if values and model_tier else None,
    stock_name=_STOCK[mode],
  )
