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

EXIT_FAILED_PREFLIGHT = 1
EXIT_BAD_INPUT = 2


def define_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
  """Defines the stock model_main_tf2 flags and od_guard's on `flag_values`."""
  fv = flag_values
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
  flags.DEFINE_enum(
    "guard_policy",
    "default",
    ["strict", "default", "lenient"],
    "od_guard policy that turns the preflight's findings into a verdict.",
    flag_values=fv,
  )
  flags.DEFINE_float(
    "guard_min_backbone_coverage",
    None,
    "Minimum fraction of backbone parameters that must restore (overrides the policy's).",
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

  flags.DEFINE_float(
    "guard_consensus_timeout",
    300.0,
    "With --num_workers > 1: seconds every worker waits for the others to join "
    "the cluster and to share their preflight verdicts; a worker that has not "
    "arrived by then stops every worker before step one.",
    flag_values=fv,
  )

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


# Static verdicts the model-built tier cannot change: the drop-in stops on them
# before importing TensorFlow and the OD API (~7 s and more).
STATIC_FINAL = frozenset(
  {
    "placeholder_path",
    "checkpoint_not_found",
    "checkpoint_path_is_file",
    "checkpoint_path_is_directory",
    "tf1_checkpoint",
    "saved_model_variables",
    "checkpoint_version_v1",
    "checkpoint_type_mismatch",
    "data_shard_missing",
    "checkpoint_value_corrupt",
  }
)


def _policy(fv):
  from od_guard.restore import policy as policy_lib

  policy = policy_lib.preset(fv.guard_policy)
  if fv.guard_min_backbone_coverage is not None:
    policy = policy.replace(min_backbone_coverage=fv.guard_min_backbone_coverage)
  return policy


def _publish(fv, report, *, chief: bool, tensorboard: bool = True, quiet: bool = False) -> str:
  from od_guard.report import publish

  report_dir = fv.guard_report_dir or os.path.join(fv.model_dir, "od_guard")
  publish.publish(
    report,
    chief=chief,
    quiet=quiet,
    json_path=os.path.join(report_dir, "report.json"),
    text_path=os.path.join(report_dir, "report.txt"),
    log_dir=fv.model_dir if tensorboard else None,
  )
  return report_dir


class _RestoreVerifier:
  """Wraps model_lib_v2.load_fine_tune_checkpoint for the duration of training:
  after the OD API's own restore, every variable the preflight predicted to be
  restored is compared with the checkpoint on every replica, bit for bit,
  before the first checkpoint save and step one. The report (with the
  verification) then goes to the files and TensorBoard; a mismatch raises.

  Attributes:
    published: whether the final report went to TensorBoard (if training
      fails before the restore ran, the caller publishes the preflight's).
  """

  def __init__(self, fv, report, strategy, *, chief: bool, file_digests=None):
    self.fv = fv
    self.report = report
    self.strategy = strategy
    self.chief = chief
    self.file_digests = file_digests  # the preflight's, when it read the values
    self.published = False

  def wrap(self, original):
    def load_fine_tune_checkpoint(model, checkpoint_path, checkpoint_type, *args, **kwargs):
      original(model, checkpoint_path, checkpoint_type, *args, **kwargs)
      self.verify(model, checkpoint_type)

    return load_fine_tune_checkpoint

  def verify(self, model, checkpoint_type: str) -> None:
    import dataclasses

    from od_guard.odapi import model as odapi_model
    from od_guard.restore import live_graph
    from od_guard.restore import policy as policy_lib
    from od_guard.restore import replica_values

    roots = odapi_model.restore_roots(model, checkpoint_type)
    whole = {"model": model}
    graph = live_graph.capture(roots, model=whole)
    live = {id(obj): obj for obj, _ in live_graph.walk(whole)}
    live.update((id(obj), obj) for obj, _ in live_graph.walk(roots))
    objects = {v.path: live[uid] for uid, v in graph.variables.items() if uid in live}
    result = replica_values.verify_restored(
      self.strategy,
      objects,
      [(b.path, b.key) for b in self.report.restore.restored],
      self.report.checkpoint.prefix,
      file_digests=self.file_digests,
    )
    found = replica_values.finding(result)
    report = dataclasses.replace(self.report, findings=(*self.report.findings, found))
    if not result.ok:
      verdict = dataclasses.replace(
        report.verdict, decision=policy_lib.FAIL, reasons=(found.title, *report.verdict.reasons)
      )
      report = dataclasses.replace(report, verdict=verdict)
    _publish(self.fv, report, chief=self.chief, quiet=True)
    self.published = True
    if not result.ok:
      raise replica_values.RestoredValuesMismatchError(result)
    print(f"od_guard: {found.title}", flush=True)


def _static_first(fv, *, multi: bool = False):
  """The TF-free static tier: (an exit code when its verdict already stops
  training, else None; the report; the error when the config is unreadable).

  With `multi` (a multi-worker run), a failing report is not published yet:
  the workers first share their verdicts (`_agree`)."""
  from od_guard import errors
  from od_guard.odapi import preflight

  try:
    report = preflight.check_static(
      fv.pipeline_config_path, model_dir=fv.model_dir, policy=_policy(fv), training=True
    )
  except errors.OdGuardError as e:
    print(f"od_guard: error: {type(e).__name__}: {e.format()}", file=sys.stderr)
    return EXIT_BAD_INPUT, None, e
  final = _final_codes(report)
  if not report.verdict.failed or not final:
    return None, report, None
  if multi:
    return EXIT_FAILED_PREFLIGHT, report, None
  # Every worker reads the same files; only the chief (worker 0) writes.
  report_dir = _publish(fv, report, chief=fv.num_workers <= 1 or _task_index() == 0)
  logging.error(
    "od_guard: preflight FAILED before importing TensorFlow (%s); not training. Report: %s",
    "; ".join(sorted(final)),
    report_dir,
  )
  return EXIT_FAILED_PREFLIGHT, report, None


def _final_codes(report) -> set[str]:
  from od_guard.restore import findings as findings_lib

  return {
    f.code for f in report.findings if f.severity == findings_lib.ERROR and f.code in STATIC_FINAL
  }


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


def _record(fv, strategy, stage: str, report=None, error=None, *, final=None):
  """This worker's consensus record from its report (or the error that
  stopped its preflight)."""
  from od_guard.restore import consensus
  from od_guard.restore import findings as findings_lib

  prefix = ""
  if report is not None and report.checkpoint is not None:
    prefix = report.checkpoint.prefix
  elif report is not None and report.config:
    prefix = str(report.config.get("fine_tune_checkpoint") or "")
  common = {
    "worker": consensus.worker_name(strategy),
    "host": _host(),
    "stage": stage,
    "checkpoint": prefix,
    "digest": consensus.index_digest(prefix) if report is not None else "",
  }
  if error is not None:
    return consensus.Record(
      decision="error", codes=(type(error).__name__,), summary=error.what, **common
    )
  errs = [f for f in report.findings if f.severity == findings_lib.ERROR]
  if final is not None:  # the static stage: only a verdict the model tier cannot change stops
    errs = [f for f in errs if f.code in final]
    decision = "fail" if errs else "pass"
  else:
    decision = report.verdict.decision
  summary = errs[0].title if errs else "; ".join(report.verdict.reasons[:1])
  if errs and errs[0].detail:  # its first clause: e.g. which file is missing
    summary += f" ({errs[0].detail.splitlines()[0].split('; ')[0][:300]})"
  return consensus.Record(
    decision=decision, codes=tuple(f.code for f in errs), summary=summary, **common
  )


def _host() -> str:
  import socket

  return socket.gethostname()


def _agree(fv, strategy, mine, report) -> int | None:
  """Shares `mine` with every worker; the exit code when they do not all pass
  with the same checkpoint (every worker prints the same message; the chief
  writes its report with the disagreement in it), else None."""
  from od_guard.restore import consensus
  from od_guard.restore import strategies

  try:
    consensus.agree(strategy, mine, fv.guard_consensus_timeout)
  except (consensus.WorkersDisagreeError, consensus.ConsensusTimeoutError) as e:
    if report is not None:
      _publish(fv, _with_consensus(report, e), chief=strategies.is_chief(strategy))
    print(f"od_guard: error: {type(e).__name__}: {e.format()}", file=sys.stderr, flush=True)
    return EXIT_FAILED_PREFLIGHT
  return None


def _with_consensus(report, error):
  """`report` with the workers' disagreement as its first error."""
  import dataclasses

  from od_guard.restore import findings as findings_lib
  from od_guard.restore import policy as policy_lib

  code = "workers_disagree" if type(error).__name__ == "WorkersDisagreeError" else "workers_missing"
  found = findings_lib.Finding(
    code,
    findings_lib.ERROR,
    error.what,
    detail=error.received.strip(),
    fix=error.fix,
    stock_outcome="the healthy workers fail later, in a collective, with a misleading error",
  )
  verdict = dataclasses.replace(
    report.verdict, decision=policy_lib.FAIL, reasons=(error.what, *report.verdict.reasons)
  )
  return dataclasses.replace(report, findings=(found, *report.findings), verdict=verdict)


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
    return EXIT_FAILED_PREFLIGHT
  if fv.guard_only:
    return 0
  return None


def run(fv: flags.FlagValues) -> int:
  """Runs the drop-in with parsed flags; returns the process exit code."""
  from od_guard import errors
  from od_guard.odapi import compat as odapi_compat

  for name in ("model_dir", "pipeline_config_path"):
    if not fv[name].value:
      print(
        f"od_guard.model_main_tf2: --{name} is required (as for model_main_tf2).", file=sys.stderr
      )
      return EXIT_BAD_INPUT
  multi = _multi_worker(fv)
  static = static_error = static_code = None
  if not fv.checkpoint_dir:
    static_code, static, static_error = _static_first(fv, multi=multi)
    if static_code is not None and not multi:
      return static_code
  odapi_compat.apply()
  from object_detection import model_lib_v2
  import tensorflow.compat.v2 as tf

  tf.config.set_soft_device_placement(True)
  # What model_lib_v2's evaluation and training loops both take.
  run_args = {
    "pipeline_config_path": fv.pipeline_config_path,
    "model_dir": fv.model_dir,
    "train_steps": fv.num_train_steps,
  }
  if fv.checkpoint_dir:
    # Eval preflight: the latest checkpoint in checkpoint_dir against the eval
    # model, whole ("full"); none yet is no failure (eval waits for one).
    from od_guard.odapi import preflight
    from od_guard.report import publish

    try:
      report = preflight.check_eval(fv.pipeline_config_path, fv.checkpoint_dir, policy=_policy(fv))
    except errors.OdGuardError as e:
      print(f"od_guard: error: {type(e).__name__}: {e.format()}", file=sys.stderr)
      return EXIT_BAD_INPUT
    report_dir = fv.guard_report_dir or os.path.join(fv.model_dir, "od_guard", "eval")
    publish.publish(
      report,
      chief=True,
      json_path=os.path.join(report_dir, "report.json"),
      text_path=os.path.join(report_dir, "report.txt"),
      log_dir=None,
    )
    stop = _stop_here(fv, report, report_dir, "eval preflight", "evaluating")
    if stop is not None:
      return stop
    model_lib_v2.eval_continuously(
      **run_args,
      sample_1_of_n_eval_examples=fv.sample_1_of_n_eval_examples,
      sample_1_of_n_eval_on_train_examples=fv.sample_1_of_n_eval_on_train_examples,
      checkpoint_dir=fv.checkpoint_dir,
      wait_interval=300,
      timeout=fv.eval_timeout,
    )
    return 0
  from od_guard.odapi import model as odapi_model
  from od_guard.odapi import preflight
  from od_guard.restore import strategies

  strategy = _start_strategy(fv, tf)
  if multi:
    # First exchange: after the static tier, before the model build (whose
    # collectives would wait on a worker that already stopped).
    mine = _record(
      fv,
      strategy,
      "static",
      static,
      static_error,
      final=_final_codes(static) if static is not None else None,
    )
    stop = _agree(fv, strategy, mine, static)
    if stop is not None:
      return stop
  # The preflight builds the model as train_loop would; train_loop gets it.
  kept = odapi_model.Kept(add_summaries=fv.record_summaries)
  try:
    policy = _policy(fv)
    with strategy.scope():
      report = preflight.check(
        fv.pipeline_config_path,
        model_dir=fv.model_dir,
        policy=policy,
        strategy=strategy,
        training=True,
        keep=kept,
      )
  except errors.OdGuardError as e:
    if multi:  # the others learn why this worker stops
      _agree(fv, strategy, _record(fv, strategy, "verdict", error=e), None)
    print(f"od_guard: error: {type(e).__name__}: {e.format()}", file=sys.stderr)
    return EXIT_BAD_INPUT
  chief = strategies.is_chief(strategy)
  if multi:
    # Second exchange: the full verdicts, before step one.
    stop = _agree(fv, strategy, _record(fv, strategy, "verdict", report), report)
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
  verifier = (
    _RestoreVerifier(fv, report, strategy, chief=chief, file_digests=kept.digests)
    if verify_restore
    else None
  )
  manager_class = tf.train.CheckpointManager
  load_fine_tune_checkpoint = model_lib_v2.load_fine_tune_checkpoint
  if fv.guard_naming_mode != "off":
    from od_guard.naming import rules as naming_rules
    from od_guard.naming import save_guard

    rules = naming_rules.load(
      fv.guard_naming_rules,
      [] if fv.guard_naming_rules else ["odapi"],
      flag="--guard_naming_rules",
    )
    # model_lib_v2 builds its own CheckpointManager; substitute a guarded one
    # for the duration of training, so the OD API's own saves are checked.
    tf.train.CheckpointManager = save_guard.guarded_manager_class(
      rules,
      mode=fv.guard_naming_mode,
      log_dir=os.path.join(fv.model_dir, "train") if chief else None,
    )
  if verifier is not None:
    # As for the CheckpointManager: substituted in-process, restored after.
    model_lib_v2.load_fine_tune_checkpoint = verifier.wrap(load_fine_tune_checkpoint)
  try:
    with odapi_model.handover(kept), strategy.scope():
      model_lib_v2.train_loop(
        **run_args,
        use_tpu=fv.use_tpu,
        checkpoint_every_n=fv.checkpoint_every_n,
        record_summaries=fv.record_summaries,
        num_steps_per_iteration=fv.num_steps_per_iteration,
      )
  except errors.OdGuardError as e:
    print(f"od_guard: error: {type(e).__name__}: {e.format()}", file=sys.stderr)
    return e.exit_code
  finally:
    tf.train.CheckpointManager = manager_class
    model_lib_v2.load_fine_tune_checkpoint = load_fine_tune_checkpoint
    if verifier is not None and not verifier.published:
      _publish(fv, report, chief=chief, quiet=True)  # the restore never ran
  return 0


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
