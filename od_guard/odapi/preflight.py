"""The restore preflight for OD API fine-tunes: read -> match -> diagnose ->
decide, in two tiers.

* `check_static` reads the pipeline.config and the checkpoint's index (and
  object graph) and imports no TensorFlow: path mistakes, format and version,
  fine_tune_checkpoint_type against the checkpoint's root objects, the
  architecture fingerprint against the config, num_classes.
* `check` adds the model-built tier: the model is built by the OD API under
  the training strategy, its restore map is matched against the checkpoint,
  and every variable's fate is known before step one.

    report = od_guard.preflight.check("pipeline.config", model_dir="train")
    if report.verdict.failed:
      print(od_guard.render.render_text(report))
"""

from __future__ import annotations

import time

from od_guard import errors
from od_guard.checkpoint import inventory
from od_guard.odapi import config as pipeline_config
from od_guard.odapi import static_diagnosis
from od_guard.report import record
from od_guard.restore import findings as findings_lib
from od_guard.restore import fingerprint as fingerprint_lib
from od_guard.restore import policy as policy_lib
from od_guard.restore import strategies

# When a static error explains it, a model-tier finding is a consequence.
_EXPLAINED_BY = {
  # The model tier's map is exact; the static one only names the scope.
  "restore_scope_missing": {"renamed_scopes"},
  "renamed_scopes": {
    "feature_extractor_mismatch",
    "meta_architecture_mismatch",
    "checkpoint_type_mismatch",
  },
  "variables_not_restored": {
    "checkpoint_type_mismatch",
    "weightless_checkpoint",
    "restore_scope_missing",
    "feature_extractor_mismatch",
    "meta_architecture_mismatch",
    "neck_mismatch",
    "saved_model_variables",
    "renamed_scopes",
  },
  "shape_mismatch": {
    "feature_extractor_mismatch",
    "depth_multiplier_mismatch",
    "num_classes_differ",
    "meta_architecture_mismatch",
  },
  "coverage_below_threshold": {
    "checkpoint_type_mismatch",
    "weightless_checkpoint",
    "restore_scope_missing",
    "feature_extractor_mismatch",
    "meta_architecture_mismatch",
    "renamed_scopes",
    "neck_mismatch",
  },
}
# Static errors after which the model tier cannot say more.
_NO_MODEL_TIER = {"placeholder_path", "tf1_checkpoint", "checkpoint_not_found"}


def _downgrade_consequences(found: list[findings_lib.Finding]) -> list[findings_lib.Finding]:
  import dataclasses

  errors_present = {f.code for f in found if f.severity == findings_lib.ERROR}
  out = []
  for f in found:
    causes = _EXPLAINED_BY.get(f.code, set()) & errors_present
    if causes and f.severity == findings_lib.ERROR:
      f = dataclasses.replace(
        f,
        severity=findings_lib.INFO,
        title=f.title + f" (a consequence of {', '.join(sorted(causes))})",
      )
    out.append(f)
  return out


class _Timer:
  def __init__(self):
    self.timings: dict[str, float] = {}

  def phase(self, name: str):
    timer = self

    class _Phase:
      def __enter__(self):
        self.t = time.perf_counter()

      def __exit__(self, *exc):
        timer.timings[name] = timer.timings.get(name, 0.0) + time.perf_counter() - self.t

    return _Phase()


def _static(
  config_path: str, checkpoint: str | None, model_dir: str | None, timer: _Timer, object_graph: str
):
  with timer.phase("read"):
    message = pipeline_config.parse(config_path)
    config = pipeline_config.read(config_path, message)
  with timer.phase("static"):
    found, ckpt_path = static_diagnosis.diagnose_path(
      config, checkpoint=checkpoint, model_dir=model_dir
    )
    found.extend(static_diagnosis.diagnose_model_dir(model_dir))
    inv = fp = None
    not_checked: list[str] = []
    if ckpt_path is not None:
      try:
        inv = inventory.read_inventory(ckpt_path, object_graph=object_graph)
      except errors.CheckpointNotFoundError as e:
        internal = ckpt_path.startswith(("/cns/", "/placer/", "/bigstore/"))
        found.append(
          findings_lib.Finding(
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
        )
      else:
        fp = fingerprint_lib.fingerprint(inv)
        found.extend(static_diagnosis.diagnose_checkpoint(config, inv, fp))
        if inv.data_shards == inventory.SHARDS_MISSING:
          not_checked.append(
            "tensor values and the object graph (the data shard is missing); "
            "the match used the index keys"
          )
  return message, config, inv, fp, found, not_checked


def check_static(
  config_path: str,
  *,
  checkpoint: str | None = None,
  model_dir: str | None = None,
  policy: policy_lib.Policy | None = None,
) -> record.Report:
  """The static tier: config and checkpoint metadata, no TensorFlow.

  Args:
    config_path: the pipeline.config.
    checkpoint: overrides train_config.fine_tune_checkpoint.
    model_dir: the training output directory (checked for stale checkpoints).
    policy: defaults to the 'default' preset.

  Raises:
    OdGuardError: the config cannot be read (a malformed checkpoint is a
      finding, not an exception, when the config names it).
  """
  policy = policy or policy_lib.preset("default")
  timer = _Timer()
  _, config, inv, fp, found, not_checked = _static(
    config_path, checkpoint, model_dir, timer, inventory.OBJECT_GRAPH_SUMMARY
  )
  not_checked.append(
    "the model was not built: exact bindings, shapes of every variable "
    "and coverage need the full check (without --static)"
  )
  verdict, adjusted = policy_lib.decide(policy, found)
  return record.Report(
    tier=record.STATIC,
    config=config.to_dict(),
    config_summary=config.summary(),
    stock_name="stock model_main_tf2",
    checkpoint=inv,
    fingerprint=fp,
    restore=None,
    findings=tuple(adjusted),
    verdict=verdict,
    timings=timer.timings,
    not_checked=tuple(not_checked),
  )


def _requested_components(report) -> frozenset[str]:
  """Components the restore asks for (those with a variable inside the roots)."""
  asked = {b.component for b in report.restored}
  asked |= {u.component for u in report.missing}
  asked |= {m.component for m in report.shape_mismatches}
  return frozenset(asked)


def check(
  config_path: str,
  *,
  checkpoint: str | None = None,
  model_dir: str | None = None,
  policy: policy_lib.Policy | None = None,
  strategy=None,
  training: bool = False,
) -> record.Report:
  """Both tiers: static checks, then the model built and matched.

  Args:
    config_path: the pipeline.config.
    checkpoint: overrides train_config.fine_tune_checkpoint.
    model_dir: the training output directory.
    policy: defaults to the 'default' preset.
    strategy: the tf.distribute strategy training uses (default: the current).
    training: the verdict gates a training run (index-only checkpoints fail).

  Returns:
    The report. Its verdict decides; nothing is raised for problems found.

  Raises:
    OdGuardError: the config cannot be read, or the OD API cannot build it.
  """
  policy = policy or policy_lib.preset("default")
  timer = _Timer()
  message, config, inv, fp, found, not_checked = _static(
    config_path, checkpoint, model_dir, timer, inventory.OBJECT_GRAPH_FULL
  )
  restore = None
  strategy_text = ""
  blocked = {f.code for f in found if f.severity == findings_lib.ERROR} & _NO_MODEL_TIER
  if inv is not None and not blocked and inv.format != inventory.TF1_NAME_BASED:
    # The model tier's modules load only when it runs: --static stays light.
    from od_guard.odapi import model as odapi_model
    from od_guard.restore import diagnosis as restore_diagnosis
    from od_guard.restore import live_graph
    from od_guard.restore import matching as restore_match

    with timer.phase("import"):
      tf, _ = odapi_model.import_odapi()
    strategy = strategy or tf.distribute.get_strategy()
    strategy_text = strategies.describe(strategy)
    with timer.phase("build"):
      model = odapi_model.build(message, strategy)
    with timer.phase("match"):
      ctype = config.effective_checkpoint_type
      try:
        roots = odapi_model.restore_roots(model, ctype)
      except odapi_model.ModelBuildError:
        roots = None  # checkpoint_type_unsupported says why
      if roots is not None:
        graph = live_graph.capture(roots, model={"model": model})
        restore = restore_match.match(graph, inv)
        hint = f'fine_tune_checkpoint_type "{ctype}" restores ' + ", ".join(f"'{k}'" for k in roots)
        found.extend(restore_diagnosis.diagnose(restore, inv, root_hint=hint))
        found.extend(policy_lib.coverage_findings(policy, restore, _requested_components(restore)))
  elif inv is not None and inv.format == inventory.TF1_NAME_BASED:
    not_checked.append("the model-built match: the TF2 OD API refuses name-based checkpoints")
  verdict, adjusted = policy_lib.decide(policy, _downgrade_consequences(found), training=training)
  return record.Report(
    tier=record.MODEL if restore is not None else record.STATIC,
    config=config.to_dict(),
    config_summary=config.summary(),
    stock_name="stock model_main_tf2",
    checkpoint=inv,
    fingerprint=fp,
    restore=restore,
    findings=tuple(adjusted),
    verdict=verdict,
    timings=timer.timings,
    strategy=strategy_text,
    not_checked=tuple(not_checked),
  )
