r"""Drop-in for the OD API's model_main_tf2, with a restore preflight.

Every flag of object_detection/model_main_tf2.py, with the same names and
defaults, plus od_guard's:

  --guard_policy               strict | default | lenient (default: default)
  --guard_min_backbone_coverage  override the policy's backbone threshold
  --guard_only                 run the preflight, write the report, exit
  --guard_report_dir           where report.json / report.txt go
                               (default: <model_dir>/od_guard)
  --num_steps_per_iteration    steps per training-loop iteration (the OD API
                               hard-codes 100; here it is a flag)
  --guard_naming_mode          off | warn | error: naming rules on every
                               checkpoint training saves (default warn)
  --guard_naming_rules         a TOML rules file (default: the odapi preset)
  --guard_consensus_timeout    seconds the workers of a multi-worker run wait
                               for each other's verdicts (default 300)
  --guard_compat               auto | off: the compat layer that runs the OD API on
                               current TensorFlow (default: OD_GUARD_COMPAT, else auto)
  --guard_ignore / --guard_select  finding codes (comma-separated) that never
                               decide the verdict / the only ones that may

A failing verdict whose fixes are edits of the config ends with the
`od-guard fix` command that applies them.

Training (no --checkpoint_dir): first the TF-free static tier (config and
checkpoint metadata, milliseconds); a verdict it already makes (a TF1
checkpoint, a missing path, a placeholder, the wrong checkpoint type, a
missing data shard) stops the run before TensorFlow is imported. Then the
distribution strategy is picked exactly as
model_main_tf2 picks it (TPU / MultiWorkerMirrored / Mirrored); under it the
preflight builds the model (as train_loop would: same config, is_training,
add_summaries), matches its restore map to fine_tune_checkpoint and decides. A failing verdict exits 1 before the input pipeline, before step
one, with no checkpoint written; the report is also in TensorBoard
(<model_dir>/train, step 0). A passing one hands over to
model_lib_v2.train_loop unchanged, except that its model builder returns the
preflight's model (built once, `model.handover`) and its load_fine_tune_checkpoint
is wrapped (in-process, for the duration of training): after the OD API's own
restore, before the first checkpoint save and step one, every variable the
preflight predicted to be restored is compared with the checkpoint on every
replica, bit for bit (fingerprints computed on each replica's device); a
mismatch exits 1 naming the variables and replicas.

Multi-worker training (--num_workers > 1, MultiWorkerMirroredStrategy): every
worker runs the preflight, and the workers exchange their verdicts through a
collective of the strategy itself (`od_guard.restore.consensus`): once after
the static tier (before the model build, whose collectives would otherwise
hang on a worker that already stopped), and once before step one. If any
worker failed, or the workers read different checkpoint files, every worker
exits 1 with the same message, naming the workers and what each read. A
worker that does not arrive within --guard_consensus_timeout stops the
others. Only the chief writes reports and TensorBoard events.

Evaluation (--checkpoint_dir): before waiting for checkpoints, the latest one
in checkpoint_dir is matched against the eval model with full restore
semantics (`preflight.check_eval`); a mismatch (e.g. another num_classes)
exits 1 with the diagnosis, --guard_only exits after the report.

  python -m od_guard.model_main_tf2 --pipeline_config_path=pipeline.config \
      --model_dir=train --alsologtostderr
"""

from __future__ import annotations

import os
import sys

from absl import app
from absl import flags
from absl import logging

from od_guard.odapi import guard_flags

EXIT_FAILED_PREFLIGHT = 1
EXIT_BAD_INPUT = 2


def define_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
  """Defines the stock model_main_tf2 flags and od_guard's on `flag_values`."""
  fv = flag_values
  _define_stock_flags(fv)
  _define_guard_flags(fv)
  _register_validators(fv)


def _define_stock_flags(fv: flags.FlagValues) -> None:
  """object_detection/model_main_tf2.py's flags: the same names and defaults."""
  flags.DEFINE_string("pipeline_config_path", None, "Path to pipeline config file.", flag_values=fv)
  flags.DEFINE_integer("num_train_steps", None, "Number of train steps.", flag_values=fv)
  flags.DEFINE_bool(
    "eval_on_train_data",
    False,
    "Enable evaluating on train data (only supported in distributed training).",
    flag_values=fv,
  )
  flags.DEFINE_integer(
    "sample_1_of_n_eval_examples",
    None,
    "Will sample one of every n eval input examples, where n is provided.",
    flag_values=fv,
  )
  flags.DEFINE_integer(
    "sample_1_of_n_eval_on_train_examples",
    5,
    "Will sample one of every "
    "n train input examples for evaluation, where n is provided. This is "
    "only used if `eval_training_data` is True.",
    flag_values=fv,
  )
  flags.DEFINE_string(
    "model_dir",
    None,
    "Path to output model directory where event and checkpoint files will be written.",
    flag_values=fv,
  )
  flags.DEFINE_string(
    "checkpoint_dir",
    None,
    "Path to directory holding a checkpoint. If "
    "`checkpoint_dir` is provided, this binary operates in eval-only mode, "
    "writing resulting metrics to `model_dir`.",
    flag_values=fv,
  )
  flags.DEFINE_integer(
    "eval_timeout",
    3600,
    "Number of seconds to wait for an evaluation checkpoint before exiting.",
    flag_values=fv,
  )
  flags.DEFINE_bool("use_tpu", False, "Whether the job is executing on a TPU.", flag_values=fv)
  flags.DEFINE_string(
    "tpu_name", None, "Name of the Cloud TPU for Cluster Resolvers.", flag_values=fv
  )
  flags.DEFINE_integer(
    "num_workers",
    1,
    "When num_workers > 1, training uses "
    "MultiWorkerMirroredStrategy. When num_workers = 1 it uses "
    "MirroredStrategy.",
    flag_values=fv,
  )
  flags.DEFINE_integer(
    "checkpoint_every_n", 1000, "Integer defining how often we checkpoint.", flag_values=fv
  )
  flags.DEFINE_boolean(
    "record_summaries",
    True,
    "Whether or not to record summaries "
    "defined by the model or the training pipeline. This does not impact "
    "the summaries of the loss values which are always recorded.",
    flag_values=fv,
  )
  # od_guard's own.


def _define_guard_flags(fv: flags.FlagValues) -> None:
  """od_guard's own flags (`--guard_*`, --num_steps_per_iteration)."""
  guard_flags.define_policy(fv)
  flags.DEFINE_float(
    "guard_min_backbone_coverage",
    None,
    "Minimum fraction of backbone parameters that must restore (overrides the policy's).",
    flag_values=fv,
  )
  flags.DEFINE_list(
    "guard_ignore",
    [],
    "Finding codes that never decide the verdict (comma-separated; added to "
    "[tool.od_guard] ignore); the report keeps them as facts.",
    flag_values=fv,
  )
  flags.DEFINE_list(
    "guard_select",
    [],
    "The only finding codes that may decide the verdict (comma-separated; replaces "
    "[tool.od_guard] select).",
    flag_values=fv,
  )
  flags.DEFINE_bool(
    "guard_only",
    False,
    "Run the od_guard preflight, write its report, and exit without training.",
    flag_values=fv,
  )
  flags.DEFINE_string(
    "guard_report_dir",
    None,
    "Where od_guard writes report.json and report.txt (default: <model_dir>/od_guard).",
    flag_values=fv,
  )
  flags.DEFINE_integer(
    "num_steps_per_iteration",
    100,
    "Training steps per loop iteration (model_lib_v2 hard-codes 100).",
    flag_values=fv,
  )
  flags.DEFINE_enum(
    "guard_naming_mode",
    "warn",
    ["off", "warn", "error"],
    "Check the names of every checkpoint training saves: warn, or error "
    "(quarantine the checkpoint and stop).",
    flag_values=fv,
  )
  flags.DEFINE_string(
    "guard_naming_rules",
    None,
    "A TOML naming-rules file (default: the odapi preset).",
    flag_values=fv,
  )

  flags.DEFINE_enum(
    "guard_compat",
    None,
    ["auto", "off"],
    "od_guard's compat layer for the OD API on current TensorFlow (od_guard.odapi.compat): "
    "auto applies the shims this stack needs before TensorFlow is imported; off applies "
    "none (default: OD_GUARD_COMPAT, else auto).",
    flag_values=fv,
  )
  flags.DEFINE_float(
    "guard_consensus_timeout",
    300.0,
    "With --num_workers > 1: seconds every worker waits for the others to join "
    "the cluster and to share their preflight verdicts; a worker that has not "
    "arrived by then stops every worker before step one.",
    flag_values=fv,
  )


def _register_validators(fv: flags.FlagValues) -> None:
  """Validators run when the flags are parsed (absl: before `app.run` calls main)."""

  def _fraction(value):
    return value is None or 0.0 <= value <= 1.0

  flags.register_validator(
    "guard_min_backbone_coverage",
    _fraction,
    message="--guard_min_backbone_coverage must be a fraction between 0 and 1.",
    flag_values=fv,
  )
  flags.register_validator(
    "guard_consensus_timeout",
    lambda v: v is not None and v > 0,
    message="--guard_consensus_timeout must be a number of seconds > 0.",
    flag_values=fv,
  )
  flags.register_validator(
    "num_steps_per_iteration",
    lambda v: v is not None and v >= 1,
    message="--num_steps_per_iteration must be a whole number >= 1.",
    flag_values=fv,
  )


def _strategy(fv, tf):
  """The strategy stock model_main_tf2 picks for these flags."""
  if fv.use_tpu:
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(fv.tpu_name)
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.experimental.TPUStrategy(resolver)
  if fv.num_workers > 1:
    return tf.distribute.experimental.MultiWorkerMirroredStrategy()
  return tf.compat.v2.distribute.MirroredStrategy()


def _policy(fv):
  """The policy: the flags over the project file's [tool.od_guard] (found by
  walking up from the config; its `where` does not apply: training needs every path).

  Raises:
    UsageError: an unknown code in --guard_ignore / --guard_select, or a wrong
      project file.
  """
  from od_guard import project_config
  from od_guard.restore import policy as policy_lib

  project = project_config.discover(fv.pipeline_config_path)
  return project.to_policy(
    preset=fv.guard_policy if fv["guard_policy"].present else None,
    min_backbone_coverage=fv.guard_min_backbone_coverage,
    ignore=policy_lib.parse_codes(fv.guard_ignore, source="--guard_ignore"),
    select=policy_lib.parse_codes(fv.guard_select, source="--guard_select") or None,
  )


def _publish(fv, report, *, chief: bool, tensorboard: bool = True, quiet: bool = False, sub=()):
  """Writes the report (text, JSON, TensorBoard) and returns its directory."""
  from od_guard.report import publish

  report_dir = fv.guard_report_dir or os.path.join(fv.model_dir, "od_guard", *sub)
  publish.publish(
    report,
    chief=chief,
    quiet=quiet,
    json_path=os.path.join(report_dir, "report.json"),
    text_path=os.path.join(report_dir, "report.txt"),
    log_dir=fv.model_dir if tensorboard else None,
  )
  return report_dir


def _bad_input(e) -> int:
  print(f"od_guard: error: {type(e).__name__}: {e.format()}", file=sys.stderr, flush=True)
  return EXIT_BAD_INPUT


def _static_first(fv, *, multi: bool = False):
  """The TF-free static tier, read once: (an exit code when its verdict already
  stops training, else None; the read stage, for the full check; the report;
  the error when the config is unreadable).

  With `multi` (a multi-worker run), a failing report is not published yet:
  the workers first share their verdicts (`_agree`)."""
  from od_guard import errors
  from od_guard.odapi import preflight
  from od_guard.restore import decide

  try:
    static = preflight.read(
      fv.pipeline_config_path,
      model_dir=fv.model_dir,
      training=True,
      num_train_steps=fv.num_train_steps,
      use_tpu=fv.use_tpu,
      tpu_name=fv.tpu_name,
    )
    report = preflight.check_static(
      fv.pipeline_config_path, policy=_policy(fv), training=True, static=static
    )
  except errors.OdGuardError as e:
    return _bad_input(e), None, None, e
  final = decide.final_static(report.findings)
  if not report.verdict.failed or not final:
    return None, static, report, None
  if multi:
    return EXIT_FAILED_PREFLIGHT, static, report, None
  # Every worker reads the same files; only the chief (worker 0) writes.
  report_dir = _publish(fv, report, chief=fv.num_workers <= 1 or _task_index() == 0)
  logging.error(
    "od_guard: preflight FAILED before importing TensorFlow (%s); not training. Report: %s",
    "; ".join(sorted(final)),
    report_dir,
  )
  _fix_hint(fv, report)
  return EXIT_FAILED_PREFLIGHT, static, report, None


def _multi_worker(fv) -> bool:
  """Training under MultiWorkerMirroredStrategy (stock's choice for these flags)."""
  return fv.num_workers > 1 and not fv.use_tpu and not fv.checkpoint_dir


def _start_strategy(fv, tf):
  """`_strategy`; a multi-worker one joins its cluster within
  --guard_consensus_timeout, or the process ends saying who is missing."""
  if not _multi_worker(fv):
    return _strategy(fv, tf)
  from od_guard.restore import consensus

  with consensus.watchdog(fv.guard_consensus_timeout, consensus.JOIN):
    return _strategy(fv, tf)


def _vote(strategy, stage: str, report=None, error=None):
  """This worker's consensus vote from its report (or the error that
  stopped its preflight). At the static stage only a verdict the model tier
  cannot change stops, so only those errors count there."""
  from od_guard.restore import consensus
  from od_guard.restore import decide

  if error is not None or report is None:
    return consensus.Vote.of(strategy, stage, error=error)
  prefix = ""
  if report.checkpoint is not None:
    prefix = report.checkpoint.prefix
  elif report.config:
    prefix = str(report.config.get("fine_tune_checkpoint") or "")
  found, decision = report.findings, report.verdict.decision
  if stage == consensus.STATIC:
    final = decide.final_static(found)
    found = [f for f in found if f.code in final]
    decision = "fail" if final else "pass"
  return consensus.Vote.of(strategy, stage, checkpoint=prefix, decision=decision, found=found)


def _agree(fv, strategy, mine, report) -> int | None:
  """Shares `mine` with every worker; the exit code when they do not all pass
  with the same checkpoint (every worker prints the same message; the chief
  writes its report with the disagreement in it), else None."""
  from od_guard import pipeline
  from od_guard.restore import consensus
  from od_guard.restore import strategies

  try:
    consensus.agree(strategy, mine, fv.guard_consensus_timeout)
  except (consensus.WorkersDisagreeError, consensus.ConsensusTimeoutError) as e:
    if report is not None:
      found = consensus.finding(
        e, stock_outcome="the healthy workers fail later, in a collective, with a misleading error"
      )
      amended = pipeline.amend(report, [found], first=True, training=True)
      _publish(fv, amended, chief=strategies.is_chief(strategy))
    print(f"od_guard: error: {type(e).__name__}: {e.format()}", file=sys.stderr, flush=True)
    return EXIT_FAILED_PREFLIGHT
  return None


def _task_index() -> int:
  import json

  try:
    return int(json.loads(os.environ.get("TF_CONFIG") or "{}").get("task", {}).get("index", 0))
  except (ValueError, AttributeError):
    return 0


def _stop_here(fv, report, report_dir: str, what: str, doing: str) -> int | None:
  """The exit code when the run stops after the report (a failed verdict, or
  --guard_only); None when it goes on."""
  if report.verdict.failed:
    logging.error(
      "od_guard: %s FAILED (%s); not %s. Report: %s",
      what,
      "; ".join(report.verdict.reasons[:3]),
      doing,
      report_dir,
    )
    _fix_hint(fv, report)
    return EXIT_FAILED_PREFLIGHT
  if fv.guard_only:
    return 0
  return None


def _fix_hint(fv, report) -> None:
  """Names the `od-guard fix` command when some of the failing findings are
  edits of the config that it applies (`odapi.config_fix`)."""
  from od_guard import errors
  from od_guard.odapi import config as pipeline_config
  from od_guard.odapi import config_fix
  from od_guard.restore import findings as findings_lib

  path = fv.pipeline_config_path
  try:
    message, text = pipeline_config.parse_with_text(path)
    config = pipeline_config.read(path, message, text=text)
  except errors.OdGuardError:
    return  # the report says why the config cannot be read
  failing = [f for f in report.findings if f.severity == findings_lib.ERROR]
  fixable = [f.code for f in failing if config_fix.edits_for(f, config)[0]]
  if fixable:
    logging.error(
      "od_guard: %d of %d can be fixed in the config (%s): od-guard fix "
      "--pipeline_config_path=%s --write",
      len(fixable),
      len(failing),
      ", ".join(fixable),
      path,
    )


def _run_args(fv) -> dict:
  """What model_lib_v2's evaluation and training loops both take."""
  return {
    "pipeline_config_path": fv.pipeline_config_path,
    "model_dir": fv.model_dir,
    "train_steps": fv.num_train_steps,
  }


def _eval_args(fv) -> dict:
  from od_guard.odapi import preflight

  return {
    "policy": _policy(fv),
    "training_flags": tuple(n for n in preflight.TRAINING_ONLY_FLAGS if fv[n].present),
  }


def _eval_static_first(fv) -> int | None:
  """The eval preflight without TensorFlow: a failing verdict with no
  checkpoint for the model tier to match (a --checkpoint_dir that does not
  exist) stops the run before TensorFlow is imported; else None."""
  from od_guard import errors
  from od_guard.odapi import preflight

  try:
    report = preflight.check_eval(
      fv.pipeline_config_path, fv.checkpoint_dir, model_tier=False, **_eval_args(fv)
    )
  except errors.OdGuardError as e:
    return _bad_input(e)
  if not report.verdict.failed or report.checkpoint is not None:
    return None  # the full check decides
  report_dir = _publish(fv, report, chief=True, tensorboard=False, sub=("eval",))
  logging.error(
    "od_guard: eval preflight FAILED before importing TensorFlow (%s); not evaluating. Report: %s",
    "; ".join(report.verdict.reasons[:3]),
    report_dir,
  )
  return EXIT_FAILED_PREFLIGHT


def _evaluate(fv, model_lib_v2) -> int:
  """Eval preflight: the latest checkpoint in checkpoint_dir against the eval
  model, whole ("full"); none yet is no failure (eval waits for one). Then
  model_lib_v2.eval_continuously."""
  from od_guard import errors
  from od_guard.odapi import preflight

  try:
    report = preflight.check_eval(fv.pipeline_config_path, fv.checkpoint_dir, **_eval_args(fv))
  except errors.OdGuardError as e:
    return _bad_input(e)
  report_dir = _publish(fv, report, chief=True, tensorboard=False, sub=("eval",))
  stop = _stop_here(fv, report, report_dir, "eval preflight", "evaluating")
  if stop is not None:
    return stop
  model_lib_v2.eval_continuously(
    **_run_args(fv),
    sample_1_of_n_eval_examples=fv.sample_1_of_n_eval_examples,
    sample_1_of_n_eval_on_train_examples=fv.sample_1_of_n_eval_on_train_examples,
    checkpoint_dir=fv.checkpoint_dir,
    wait_interval=300,
    timeout=fv.eval_timeout,
  )
  return 0


def _train(fv, tf, model_lib_v2, static, static_report, static_error) -> int:
  """The full preflight under the training strategy (the workers agreeing
  twice in a multi-worker run), then model_lib_v2.train_loop with the
  preflight's model and the restore verified."""
  from od_guard import errors
  from od_guard.odapi import model as odapi_model
  from od_guard.odapi import preflight
  from od_guard.odapi import training_hooks
  from od_guard.restore import consensus
  from od_guard.restore import strategies

  multi = _multi_worker(fv)
  strategy = _start_strategy(fv, tf)
  if multi:
    # First exchange: after the static tier, before the model build (whose
    # collectives would wait on a worker that already stopped).
    mine = _vote(strategy, consensus.STATIC, static_report, static_error)
    stop = _agree(fv, strategy, mine, static_report)
    if stop is not None:
      return stop
  # The preflight builds the model as train_loop would; train_loop gets it.
  kept = odapi_model.Kept(add_summaries=fv.record_summaries)
  try:
    with strategy.scope():
      report = preflight.check(
        fv.pipeline_config_path,
        model_dir=fv.model_dir,
        policy=_policy(fv),
        strategy=strategy,
        training=True,
        keep=kept,
        static=static,
      )
  except errors.OdGuardError as e:
    if multi:  # the others learn why this worker stops
      _agree(fv, strategy, _vote(strategy, consensus.VERDICT, error=e), None)
    return _bad_input(e)
  chief = strategies.is_chief(strategy)
  if multi:
    # Second exchange: the full verdicts, before step one.
    stop = _agree(fv, strategy, _vote(strategy, consensus.VERDICT, report), report)
    if stop is not None:
      return stop
  # A passing run that restores values reaches TensorBoard once, after the
  # restore was verified on every replica (with the verification in it).
  verify_restore = (
    not report.verdict.failed
    and not fv.guard_only
    and report.restore is not None
    and bool(report.restore.restored)
    and report.checkpoint is not None
  )
  report_dir = _publish(fv, report, chief=chief, tensorboard=not verify_restore)
  stop = _stop_here(fv, report, report_dir, "preflight", "training")
  if stop is not None:
    return stop
  verifier = None
  if verify_restore:
    verifier = training_hooks.RestoreVerifier(
      report,
      strategy,
      lambda r: _publish(fv, r, chief=chief, quiet=True),
      file_digests=kept.digests,
    )
  try:
    _train_loop(fv, model_lib_v2, kept, strategy, verifier, chief)
  except errors.OdGuardError as e:
    print(f"od_guard: error: {type(e).__name__}: {e.format()}", file=sys.stderr)
    return e.exit_code
  finally:
    if verifier is not None and not verifier.published:
      _publish(fv, report, chief=chief, quiet=True)  # the restore never ran
  return 0


def _train_loop(fv, model_lib_v2, kept, strategy, verifier, chief: bool) -> None:
  """model_lib_v2.train_loop, with the preflight's model handed over, the
  restore verified and the naming rules checked at every save."""
  from od_guard.odapi import model as odapi_model
  from od_guard.odapi import training_hooks

  with (
    training_hooks.guarded_saves(
      fv.guard_naming_rules,
      fv.guard_naming_mode,
      os.path.join(fv.model_dir, "train") if chief else None,
    ),
    training_hooks.verified_restore(verifier),
    odapi_model.handover(kept),
    strategy.scope(),
  ):
    model_lib_v2.train_loop(
      **_run_args(fv),
      use_tpu=fv.use_tpu,
      checkpoint_every_n=fv.checkpoint_every_n,
      record_summaries=fv.record_summaries,
      num_steps_per_iteration=fv.num_steps_per_iteration,
    )


def run(fv: flags.FlagValues) -> int:
  """Runs the drop-in with parsed flags; returns the process exit code."""
  from od_guard.odapi import compat as odapi_compat

  for name in ("model_dir", "pipeline_config_path"):
    if not fv[name].value:
      print(
        f"od_guard.model_main_tf2: --{name} is required (as for model_main_tf2).", file=sys.stderr
      )
      return EXIT_BAD_INPUT
  from od_guard import errors

  try:  # before anything imports TensorFlow: one schema for both tiers
    odapi_compat.install(fv.guard_compat)
  except errors.OdGuardError as e:
    return _bad_input(e)
  static = static_report = static_error = None
  if fv.checkpoint_dir:
    code = _eval_static_first(fv)
    if code is not None:
      return code
  else:
    code, static, static_report, static_error = _static_first(fv, multi=_multi_worker(fv))
    if code is not None and not _multi_worker(fv):
      return code
  odapi_compat.apply()
  from object_detection import model_lib_v2
  import tensorflow.compat.v2 as tf

  tf.config.set_soft_device_placement(True)
  if fv.checkpoint_dir:
    return _evaluate(fv, model_lib_v2)
  return _train(fv, tf, model_lib_v2, static, static_report, static_error)


def main(argv) -> None:
  del argv
  code = run(flags.FLAGS)
  if code and _multi_worker(flags.FLAGS):
    # A multi-worker TF runtime can wait at exit for peers that already left.
    logging.flush()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
  sys.exit(code)


if __name__ == "__main__":
  define_flags()
  app.run(main)
