"""A guarded replacement for ``tf.train.Checkpoint(model=model).restore(path)``.

    report = od_guard.guarded_restore.restore(model, "pretrained/ckpt-3")

Before anything is assigned it predicts the restore (names, shapes, dtypes
from metadata), diagnoses what would go wrong, and applies the policy; a
failing verdict raises `RestoreGuardError` with the report, leaving the model
untouched. Otherwise it restores and verifies that every variable that was
supposed to take a checkpoint value holds exactly that value, on every replica
of the model's distribution strategy.

Checkpoints: TF object-based (Keras 3 or tf-keras models, or any dict of
trackables), Keras 3 ``.weights.h5`` / ``.keras`` for Keras 3 models, Keras 2
HDF5 ``.h5`` for tf-keras models. The deferred-restore trap (a model that is
not built yet) is caught: pass ``input_shape`` to build it first.
"""

from __future__ import annotations

from collections.abc import Sequence
import dataclasses
import functools
import os
import shutil
from typing import Any

from od_guard import errors
from od_guard import pipeline
from od_guard.checkpoint import inventory
from od_guard.checkpoint import keras_files
from od_guard.checkpoint import key_folding
from od_guard.checkpoint import paths as checkpoint_path
from od_guard.keras import model_facts as keras_model
from od_guard.report import publish
from od_guard.report import record
from od_guard.report import render
from od_guard.restore import consensus
from od_guard.restore import findings as findings_lib
from od_guard.restore import keras_layout as keras_diagnosis
from od_guard.restore import live_graph
from od_guard.restore import matching as restore_match
from od_guard.restore import policy as policy_lib
from od_guard.restore import replica_values
from od_guard.restore import strategies

_KERAS_FILES = (inventory.KERAS3_WEIGHTS, inventory.KERAS2_HDF5)


class RestoreGuardError(errors.OdGuardError):
  """The guarded restore's verdict failed.

  Either before the restore (nothing was assigned), or after it: the
  verification found values that differ from the checkpoint
  (`restore_not_applied`; the report says which).

  Attributes:
    report: the `record.Report` that failed.
  """

  exit_code = 1

  def __init__(self, report: record.Report):
    self.report = report
    errs = [f for f in report.findings if f.severity == findings_lib.ERROR]
    first = errs[0] if errs else None
    after = report.finding(replica_values.NOT_APPLIED) is not None
    super().__init__(
      (
        "od_guard checked the restore, and it failed: "
        if after
        else "od_guard stopped the restore before training: "
      )
      + (first.title if first else "; ".join(report.verdict.reasons)),
      received=(
        f"{report.checkpoint.prefix if report.checkpoint else '?'}: "
        f"{len(errs)} error(s); " + "; ".join(f.code for f in errs[:5])
      ),
      fix=(first.fix if first and first.fix else "See the report.")
      + "\n\n"
      + render.render_text(report),
    )


def _strategy_of(model: Any):
  import tensorflow as tf

  strategy = getattr(model, "distribute_strategy", None)
  if strategy is None or isinstance(model, dict):
    strategy = tf.distribute.get_strategy()
  return strategy


def _verify(strategy, roots, graph, report, prefix) -> findings_lib.Finding:
  """Every restored variable against the checkpoint, bit for bit, on every
  replica: fingerprinted on each replica's device (`replica_values`)."""
  live = live_graph.variables(roots)
  objects = {graph.variables[uid].path: obj for uid, obj in live.items() if uid in graph.variables}
  result = replica_values.verify_restored(
    strategy, objects, [(b.path, b.key) for b in report.restored], prefix
  )
  return replica_values.finding(result, what="variables")


def _verification(wrong: list[str], total: int, what: str) -> findings_lib.Finding:
  """The finding that closes a verification: all values as promised, or which not."""
  if wrong:
    return findings_lib.Finding(
      "restore_not_applied",
      findings_lib.ERROR,
      f"{len(wrong)} of {total} values differ from the checkpoint after the restore.",
      detail="\n".join("  " + l for l in key_folding.fold_keys(wrong)),
      fix="Report this with the model and checkpoint: the restore did not do what it promised.",
    )
  return findings_lib.Finding("restore_verified", findings_lib.INFO, f"Verified: {total} {what}.")


def _verify_keras_file(model, inv, report) -> findings_lib.Finding:
  """After the load: every variable that was to take a dataset of the file
  holds exactly its value. The file is read through od_guard's TF-free reader
  (a `.keras` archive through its weights member), never h5py on the zip; the
  model's side is its live variables, or where od_guard cannot map paths to
  them, what its own save_weights writes."""
  import numpy as np

  theirs = keras_files.read_values(inv.prefix, inv.resolved.container, _keys(report, "key"))
  variables = keras_model.weight_paths(model, inv.format == inventory.KERAS3_WEIGHTS)
  if variables is not None and all(b.path in variables for b in report.restored):
    mine = {b.path: np.asarray(variables[b.path]) for b in report.restored}
  else:
    saved = keras_model.saved_weights_layout(model, _suffix(inv))
    try:
      mine = keras_files.read_values(saved, checkpoint_path.KERAS_H5, _keys(report, "path"))
    finally:
      shutil.rmtree(os.path.dirname(saved), ignore_errors=True)
  wrong = [b.path for b in report.restored if not np.array_equal(mine[b.path], theirs[b.key])]
  return _verification(wrong, len(report.restored), "weights hold the file's values")


def _keys(report, field: str) -> list[str]:
  return [getattr(b, field) for b in report.restored]


def _suffix(inv) -> str:
  return ".weights.h5" if inv.format == inventory.KERAS3_WEIGHTS else ".h5"


def _assign_from_keras_file(model, inv, report, strategy) -> None:
  """Assigns exactly the predicted bindings from a Keras weights file (when
  some of the file must be skipped: `exclude`, which load_weights cannot do).

  Raises:
    UsageError: od_guard cannot map this Keras's weight paths to variables.
  """
  variables = keras_model.weight_paths(model, inv.format == inventory.KERAS3_WEIGHTS)
  if variables is None or not all(b.path in variables for b in report.restored):
    raise errors.UsageError(
      "`exclude` cannot be applied to this Keras weights file: od_guard cannot tell which "
      "variable each of its datasets holds in this version of Keras.",
      received=f"{inv.prefix} into a {keras_model.describe(model)} model",
      fix=(
        "Load without `exclude` and re-initialise the layers to leave out afterwards, or "
        "(Keras 2 .h5) model.load_weights(path, by_name=True, skip_mismatch=True)."
      ),
    )
  values = keras_files.read_values(inv.prefix, inv.resolved.container, _keys(report, "key"))
  with strategy.scope():
    for b in report.restored:
      variables[b.path].assign(values[b.key])


def _manual_restore(strategy, roots, graph, report, prefix) -> None:
  """Assigns exactly the predicted bindings (used when some must be skipped)."""
  import tensorflow as tf

  reader = tf.train.load_checkpoint(prefix)
  objects = live_graph.variables(roots)
  by_path = {v.path: uid for uid, v in graph.variables.items()}
  with strategy.scope():
    for b in report.restored:
      objects[by_path[b.path]].assign(reader.get_tensor(b.key))


def _build_or_defer(model, inv, policy, input_shape, strategy):
  """Builds an unbuilt model from `input_shape`; without one, the deferred
  restore is an error (a fact under a policy that allows it)."""
  if isinstance(model, dict) or keras_model.is_built(model):
    return [], []
  if input_shape is not None:
    with strategy.scope():
      keras_model.build(model, input_shape)
    return [], []
  if policy.allow_unbuilt_model:
    return [], ["the model is not built: the restore is deferred and unverified"]
  return [keras_diagnosis.deferred(inv, keras_model.unbuilt_layers(model))], []


def restore(
  model: Any,
  checkpoint: str,
  *,
  policy: policy_lib.Policy | None = None,
  input_shape: Sequence[int | None] | None = None,
  exclude: Sequence[str] = (),
  optimizer: bool = False,
  by_name: bool = False,
  skip_mismatch: bool = False,
  verify: bool = True,
  log_dir: str | None = None,
  report_path: str | None = None,
  quiet: bool = False,
  consensus_timeout: float = consensus.DEFAULT_TIMEOUT,
) -> record.Report:
  """Guarded restore of `checkpoint` into `model`.

  Under MultiWorkerMirroredStrategy every worker runs it (as `fit` runs the
  callbacks on every worker) and the workers exchange what they read and
  decided (`od_guard.restore.consensus`): once after reading the checkpoint,
  before anything that needs the other workers, and once before restoring. If
  any worker fails, or the workers read different files, every worker raises
  the same `WorkersDisagreeError` and none restores.

  Args:
    model: a Keras 3 or tf-keras model, or a dict of trackables (the keyword
      arguments of the `tf.train.Checkpoint` you would build).
    checkpoint: a TF checkpoint (prefix, directory, .index ...), or a Keras
      weights file.
    policy: defaults to the 'default' preset.
    input_shape: builds an unbuilt model first (batch dimension first, may be
      None), instead of failing on the deferred-restore trap.
    exclude: object-path prefixes not to restore (e.g. a new head:
      ['model/layer_with_weights-3']); they keep their initial values. For a
      Keras weights file, prefixes of its dataset paths (['dense_1/dense_1'],
      ['layers/dense_1/vars']), as the findings propose them.
    optimizer: also restore (and require) the optimizer's state. By default
      only the model is restored: a compiled model does not need the
      checkpoint's optimizer, and the optimizer's variables are not required.
    by_name, skip_mismatch: for a Keras 2 HDF5 `.h5` file, load as
      `model.load_weights(path, by_name=..., skip_mismatch=...)` does (layers
      by name; weights whose shapes differ skipped). The guard reports how many
      weights bind: a load that binds nothing, or leaves layers empty that the
      file holds under other names, fails (stock Keras says nothing).
    verify: compare every restored variable with the checkpoint afterwards,
      on every replica.
    log_dir: also write the report to TensorBoard there (step 0, run 'train').
    report_path: also write the JSON report there (atomically).
    quiet: do not print the text report.
    consensus_timeout: under MultiWorkerMirroredStrategy, seconds to wait for
      every worker's record.

  Returns:
    The report (verdict pass or warn).

  Raises:
    RestoreGuardError: the verdict failed: before the restore (nothing was
      assigned), or after it (the verification found other values).
    WorkersDisagreeError: under MultiWorkerMirroredStrategy, some worker
      failed or read other files; nothing was restored on any worker.
    ConsensusTimeoutError: some worker did not arrive in time.
    OdGuardError: the checkpoint cannot be read.
  """
  policy = policy or policy_lib.preset("default")
  strategy = _strategy_of(model)
  multi = consensus.is_multi_worker(strategy)
  static = _read(checkpoint, strategy, multi, consensus_timeout)
  roots = _roots(model, static.inventory)
  exclude = (*exclude, *_optimizer_paths(model, roots, optimizer))
  # A root that is excluded as a whole is no root of the restore.
  roots = {name: obj for name, obj in roots.items() if name not in exclude}
  load = _load_options(static.inventory, by_name, skip_mismatch)
  graph, report = _check(model, roots, static, policy, input_shape, exclude, strategy, load)
  publish_report = functools.partial(
    publish.publish,
    chief=strategies.is_chief(strategy),
    quiet=quiet,
    json_path=report_path,
    log_dir=log_dir,
  )
  if multi:
    _agree_on_verdict(strategy, static.inventory, report, consensus_timeout, publish_report)
  if not report.verdict.failed and (report.restore is not None or static.not_checked):
    report = _restore_and_verify(
      model, roots, graph, report, strategy, exclude, static, verify, load
    )
  report = dataclasses.replace(report, timings=dict(static.timer.timings))
  publish_report(report)
  if report.verdict.failed:
    raise RestoreGuardError(report)
  return report


def _read(checkpoint: str, strategy, multi: bool, timeout: float) -> pipeline.Static:
  """The checkpoint as read; under MultiWorkerMirroredStrategy the workers
  first agree that they read the same files (or learn why one cannot)."""
  static = pipeline.Static()
  with static.timer.phase("read"):
    try:
      static.inventory = inventory.read_inventory(
        checkpoint, object_graph=inventory.OBJECT_GRAPH_FULL
      )
    except errors.OdGuardError as e:
      if multi:  # the others learn why this worker stops, and stop too
        mine = consensus.Vote.of(strategy, consensus.READ, checkpoint=checkpoint, error=e)
        consensus.agree(strategy, mine, timeout)
      raise
  if multi:
    with static.timer.phase("consensus"):
      mine = consensus.Vote.of(strategy, consensus.READ, checkpoint=static.inventory.prefix)
      consensus.agree(strategy, mine, timeout)
  return static


def _roots(model, inv) -> dict[str, Any]:
  """The restore's roots: a dict as given; a Keras model under 'model' (as
  `tf.train.Checkpoint(model=model)` saves it), or as the root itself when the
  checkpoint is rooted at the model, as Keras 2's `model.save_weights(prefix)`
  (TF format) writes and `model.load_weights(prefix)` reads it: keys like
  'layer_with_weights-0/kernel/...'."""
  if isinstance(model, dict):
    return model
  children = _children(model)
  if inv.format != inventory.TF2_OBJECT_BASED or not children:
    return {"model": model}
  tops = {v.key.split("/", 1)[0] for v in inv.variables if v.kind == inventory.MODEL}
  if "model" not in tops and tops & set(children):
    return dict(children)
  return {"model": model}


def _children(model) -> dict[str, Any]:
  get = getattr(model, "_trackable_children", None)
  if get is None:
    return {}
  try:
    return dict(get())
  except TypeError:
    return dict(get(save_type="checkpoint"))


def _optimizer_paths(model, roots, optimizer: bool) -> tuple[str, ...]:
  """The object path of a compiled Keras model's optimizer, unless the
  optimizer was asked for: restoring a model does not need its optimizer."""
  if optimizer or isinstance(model, dict):
    return ()
  name = keras_model.optimizer_child(model)
  if name is None:
    return ()
  return (name,) if "model" not in roots else (f"model/{name}",)


@dataclasses.dataclass(frozen=True)
class _KerasLoad:
  """How `model.load_weights` is asked to read a Keras 2 HDF5 file."""

  by_name: bool = False
  skip_mismatch: bool = False


def _load_options(inv, by_name: bool, skip_mismatch: bool) -> _KerasLoad:
  """The load options, checked against the file kind.

  Raises:
    UsageError: by_name / skip_mismatch for a file kind they do not apply to
      (od_guard does not predict them there).
  """
  if (by_name or skip_mismatch) and inv.format != inventory.KERAS2_HDF5:
    raise errors.UsageError(
      "`by_name` and `skip_mismatch` apply to Keras 2 HDF5 (.h5) weight files only.",
      received=f"by_name={by_name!r}, skip_mismatch={skip_mismatch!r} for {inv.prefix} "
      f"({inv.format})",
      fix=(
        "Leave them out: for a TF checkpoint or a Keras 3 file name what is not to be "
        "restored with exclude=[...] (the findings propose it)."
      ),
    )
  if skip_mismatch and not by_name:
    raise errors.UsageError(
      "`skip_mismatch=True` needs `by_name=True` for a Keras 2 .h5 file (Keras 2's "
      "load_weights refuses it otherwise).",
      received=f"by_name={by_name!r}, skip_mismatch={skip_mismatch!r}",
      fix="Pass by_name=True as well, or leave skip_mismatch out and use exclude=[...].",
    )
  return _KerasLoad(by_name=bool(by_name), skip_mismatch=bool(skip_mismatch))


def _never_built(model, roots, inv, flavour) -> list[findings_lib.Finding]:
  """Layers of a built Keras model that have no variables (call() skips
  them), with how many of the checkpoint's values name each one."""
  if isinstance(model, dict):
    return []
  unbuilt = [
    layer
    for layer in getattr(model, "layers", None) or []
    if not getattr(layer, "built", True) and layer is not model
  ]
  if not unbuilt:
    return []
  wanted = {id(layer) for layer in unbuilt}
  paths = {id(obj): path for obj, path in live_graph.walk(roots) if id(obj) in wanted}
  out = []
  for layer in unbuilt:
    path = paths.get(id(layer))
    waiting = sum(1 for v in inv.variables if path and v.key.startswith(path + "/"))
    out.append((getattr(layer, "name", path or "?"), waiting))
  return [keras_diagnosis.layers_never_built(out, model_flavour=flavour)]


def _requested_optimizer(model, roots, exclude):
  """The optimizer the restore is asked to fill: a root of the dict that is a
  Keras optimizer, or the compiled model's own when optimizer=True."""
  for obj in roots.values():
    if keras_model.optimizer_generation(obj) is not None:
      return obj
  if isinstance(model, dict):
    return None
  name = keras_model.optimizer_child(model)
  if name is None:
    return None
  path = name if "model" not in roots else f"model/{name}"
  return None if path in exclude else model.optimizer


def _optimizer_findings(model, roots, inv, exclude) -> list[findings_lib.Finding]:
  """A resume of one optimizer generation's state into the other."""
  optimizer = _requested_optimizer(model, roots, exclude)
  if optimizer is None:
    return []
  saved = keras_diagnosis.checkpoint_optimizer(inv)
  live = keras_model.optimizer_generation(optimizer)
  if saved is None or live is None or saved == live:
    return []
  return [keras_diagnosis.optimizer_generation(saved, live, type(optimizer).__name__)]


def _check(model, roots, static, policy, input_shape, exclude, strategy, load=_KerasLoad()):
  """The predicted restore, diagnosed and decided: (the live graph, the report)."""
  flavour = None if isinstance(model, dict) else keras_model.flavour(model)
  graph, predicted, captured = _predict(
    model, roots, flavour, static, policy, input_shape, exclude, strategy, load
  )
  report = pipeline.run(
    static,
    policy=policy,
    capture=None if captured is None else (lambda: captured),
    predicted=predicted,
    more=[functools.partial(keras_diagnosis.diagnose, model_flavour=flavour)],
    stock_assertion=False,
    training=True,
    strategy=strategies.describe(strategy),
    tier=record.MODEL,
  )
  return graph, report


def _predict(model, roots, flavour, static, policy, input_shape, exclude, strategy, load):
  """What the restore will walk: (the live graph, a restore predicted from a
  Keras weights file, the capture for a TF checkpoint); findings and what
  was not checked go into `static` (an unbuilt model, another Keras's file)."""
  inv = static.inventory
  found, not_checked = _build_or_defer(model, inv, policy, input_shape, strategy)
  static.found.extend(found)
  static.not_checked.extend(not_checked)
  if found or not_checked:
    return None, None, None
  static.found.extend(_never_built(model, roots, inv, flavour))
  with static.timer.phase("match"):
    if inv.format in _KERAS_FILES:
      predicted, more = _keras_file(model, inv, flavour, exclude, load)
      static.found.extend(more)
      return None, predicted, None
    graph = live_graph.capture(roots, exclude=exclude)
    keras3 = flavour == keras_diagnosis.KERAS3 and "model" in roots
    found = [keras_diagnosis.tf_checkpoint_for_keras3()] if keras3 else []
    captured = pipeline.Capture(
      graph, found=found + _optimizer_findings(model, roots, inv, exclude)
    )
  return graph, None, captured


def _agree_on_verdict(strategy, inv, report, timeout: float, publish_report) -> None:
  """The workers' second exchange: every verdict, before anything is restored.

  Raises:
    WorkersDisagreeError, ConsensusTimeoutError: after publishing the report
      with the disagreement as its first error.
  """
  mine = consensus.Vote.of(
    strategy,
    consensus.VERDICT,
    checkpoint=inv.prefix,
    decision=report.verdict.decision,
    found=report.findings,
  )
  try:
    consensus.agree(strategy, mine, timeout)
  except (consensus.WorkersDisagreeError, consensus.ConsensusTimeoutError) as e:
    publish_report(pipeline.amend(report, [consensus.finding(e)], first=True, training=True))
    raise


def _restore_and_verify(
  model, roots, graph, report, strategy, exclude, static, verify: bool, load=_KerasLoad()
):
  """Restores, then (with `verify`) judges the verification with the report."""
  inv = static.inventory
  with static.timer.phase("restore"):
    try:
      _apply(model, roots, inv, graph, report.restore, strategy, exclude, load)
    except errors.OdGuardError:
      raise
    except Exception as e:  # pylint: disable=broad-except  # named in the report, never raw
      loader = "load_weights" if inv.format in _KERAS_FILES else "the checkpoint restore"
      return pipeline.amend(report, [keras_diagnosis.load_raised(e, loader)], training=True)
  if not verify or report.restore is None:
    return report
  not_checked: list[str] = []
  verification = _verify_restore(model, strategy, roots, graph, report.restore, inv, not_checked)
  return pipeline.amend(report, [verification], training=True, not_checked=not_checked)


def _verify_restore(model, strategy, roots, graph, report, inv, not_checked):
  """The finding that says whether every restored value holds the checkpoint's."""
  if inv.format in _KERAS_FILES:
    not_checked.append(
      "Keras weight file: values verified on the first replica only "
      "(load_weights assigns all replicas alike)"
    )
    return _verify_keras_file(model, inv, report)
  return _verify(strategy, roots, graph, report, inv.prefix)


def _apply(model, roots, inv, graph, report, strategy, exclude, load=_KerasLoad()) -> None:
  import tensorflow as tf

  if inv.format in _KERAS_FILES:
    if any(_excluded(u.path, exclude) for u in report.not_requested):
      _assign_from_keras_file(model, inv, report, strategy)  # load_weights cannot skip
    elif load.by_name:
      model.load_weights(inv.prefix, by_name=True, skip_mismatch=load.skip_mismatch)
    else:
      model.load_weights(inv.prefix)
    return
  if report is None:  # deferred, allowed by the policy
    tf.train.Checkpoint(**roots).restore(inv.prefix).expect_partial()
    return
  if report.shape_mismatches or report.dtype_mismatches or exclude or "model" not in roots:
    _manual_restore(strategy, roots, graph, report, inv.prefix)
  else:
    with strategy.scope():
      tf.train.Checkpoint(**roots).restore(inv.prefix).expect_partial()


def _keras_file(model, inv, flavour, exclude=(), load=_KerasLoad()):
  """Predicts `model.load_weights(file)` by comparing the file with the layout
  the model's own `save_weights` writes; what `exclude` names (prefixes of the
  layout's dataset paths) is not requested."""
  want = {
    keras_diagnosis.KERAS3: inventory.KERAS3_WEIGHTS,
    keras_diagnosis.TF_KERAS: inventory.KERAS2_HDF5,
    keras_diagnosis.KERAS2: inventory.KERAS2_HDF5,
  }.get(flavour)
  if want is not None and want != inv.format:
    return None, [keras_diagnosis.keras_file_flavour(inv, flavour)]
  suffix = ".weights.h5" if inv.format == inventory.KERAS3_WEIGHTS else ".h5"
  layout_path = keras_model.saved_weights_layout(model, suffix)
  try:
    expected = inventory.read_inventory(layout_path)
    if load.by_name:
      return _by_name(model, expected, inv, exclude, load.skip_mismatch)
    report = restore_match.match_keys(expected, inv, by_order=inv.format == inventory.KERAS2_HDF5)
  finally:
    shutil.rmtree(os.path.dirname(layout_path), ignore_errors=True)
  return (_without(report, exclude) if exclude else report), []


def _by_name(model, expected, inv, exclude, skip_mismatch: bool):
  """Predicts Keras 2's `load_weights(h5, by_name=True, skip_mismatch=...)`:
  each top-level layer of the model takes the file's layer of its name, weight
  by weight in order; a layer the file does not name gets nothing (silently,
  in stock Keras); with skip_mismatch, weights whose shapes differ are skipped.
  Returns (the prediction, findings)."""
  import numpy as np

  theirs = dict(keras_files.layer_groups(inv.prefix, inv.resolved.container))
  mine_all = expected.by_key()
  have = inv.by_key()
  mine_order, file_order, used = [], [], set()
  unbound: list[tuple[str, list]] = []
  skipped, skipped_layers, total_params = [], [], 0
  for layer in getattr(model, "layers", []):
    keys = [
      f"{layer.name}/{w.name}"
      for w in [*layer.trainable_weights, *layer.non_trainable_weights]
      if f"{layer.name}/{w.name}" in mine_all
    ]
    total_params += sum(int(np.prod(mine_all[k].shape)) for k in keys)
    if not keys or _excluded(layer.name, exclude):
      continue
    if layer.name not in theirs:
      unbound.append((layer.name, [tuple(mine_all[k].shape) for k in keys]))
      continue
    used.add(layer.name)
    for mine, file_key in zip(keys, theirs[layer.name]):
      if skip_mismatch and tuple(have[file_key].shape) != tuple(mine_all[mine].shape):
        skipped.append(mine)
        if layer.name not in skipped_layers:
          skipped_layers.append(layer.name)
        continue
      mine_order.append(mine)
      file_order.append(file_key)
  report = restore_match.match_keys(
    dataclasses.replace(expected, weight_order=tuple(mine_order)),
    dataclasses.replace(inv, weight_order=tuple(file_order)),
    by_order=True,
  )
  report = _without(report, (*exclude, *(name for name, _ in unbound), *skipped))
  found = []
  total = len([v for v in expected.variables if v.kind == inventory.MODEL])
  unused = [
    (name, [tuple(have[k].shape) for k in keys])
    for name, keys in theirs.items()
    if name not in used
  ]
  layer_map = keras_diagnosis.pair_layers(unbound, unused)
  if unbound and (layer_map or not report.restored):
    by_order = restore_match.match_keys(expected, inv, by_order=True)
    found.append(
      keras_diagnosis.by_name_unbound(
        bound=len(report.restored),
        total=total,
        unbound_layers=[name for name, _ in unbound],
        file_layers=[name for name, _ in unused],
        layer_map=layer_map,
        by_order_binds=not (
          by_order.missing or by_order.shape_mismatches or by_order.dtype_mismatches
        ),
        skip_mismatch=skip_mismatch,
      )
    )
  skipped_params = sum(int(np.prod(mine_all[k].shape)) for k in skipped)
  if skipped and 2 * skipped_params > total_params:
    found.append(
      keras_diagnosis.skip_mismatch_misses(
        skipped=skipped_layers, skipped_params=skipped_params, total_params=total_params
      )
    )
  return report, found


def _excluded(path: str, exclude) -> bool:
  return any(path == p.rstrip("/") or path.startswith(p.rstrip("/") + "/") for p in exclude)


def _without(report, exclude):
  """The prediction with what `exclude` names moved to not requested (it keeps
  its initial values), and the file's values that it would have taken unused."""
  gone = [
    restore_match.Unbound(x.path, x.shape, x.dtype, x.component)
    for x in (*report.restored, *report.missing)
    if _excluded(x.path, exclude)
  ]
  gone += [
    restore_match.Unbound(m.path, tuple(m.model), "", m.component)
    for m in report.shape_mismatches
    if _excluded(m.path, exclude)
  ]
  gone += [
    restore_match.Unbound(m.path, (), m.model, m.component)
    for m in report.dtype_mismatches
    if _excluded(m.path, exclude)
  ]
  freed = [
    x.key
    for x in (*report.restored, *report.shape_mismatches, *report.dtype_mismatches)
    if _excluded(x.path, exclude)
  ]
  keep = lambda xs: tuple(x for x in xs if not _excluded(x.path, exclude))  # noqa: E731
  return dataclasses.replace(
    report,
    restored=keep(report.restored),
    missing=keep(report.missing),
    shape_mismatches=keep(report.shape_mismatches),
    dtype_mismatches=keep(report.dtype_mismatches),
    not_requested=(*report.not_requested, *gone),
    unused=tuple(sorted({*report.unused, *freed})),
  )
