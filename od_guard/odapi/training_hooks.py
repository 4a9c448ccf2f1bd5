"""What the drop-in substitutes inside model_lib_v2 while it trains, as
context managers that put the originals back however training ends.

* `verified_restore`: wraps `model_lib_v2.load_fine_tune_checkpoint`; after
  the OD API's own restore, before the first checkpoint save and step one,
  every variable the preflight predicted to be restored is compared with the
  checkpoint on every replica, bit for bit (`replica_values`). The
  verification is a finding the policy judges (`pipeline.amend`); a failing
  verdict raises `RestoredValuesMismatchError`.
* `guarded_saves`: `tf.train.CheckpointManager` replaced by one that checks
  the naming rules at every save (`naming.save_guard`).

TensorFlow and the OD API are imported on use: the drop-in imports them only
after its static tier passed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
import contextlib
from typing import Any

from od_guard import pipeline
from od_guard.report import record


class RestoreVerifier:
  """Verifies the real restore against the preflight's prediction.

  Attributes:
    report: the preflight's report, then the one with the verification.
    published: whether the report with the verification was published (if
      training fails before the restore ran, the caller publishes the
      preflight's own).
  """

  def __init__(
    self,
    report: record.Report,
    strategy: Any,
    publish: Callable[[record.Report], object],
    *,
    file_digests: Any = None,
  ):
    self.report = report
    self.strategy = strategy
    self.publish = publish
    self.file_digests = file_digests  # the preflight's, when it read the values
    self.published = False

  def wrap(self, original: Callable) -> Callable:
    def load_fine_tune_checkpoint(model, checkpoint_path, checkpoint_type, *args, **kwargs):
      original(model, checkpoint_path, checkpoint_type, *args, **kwargs)
      self.verify(model, checkpoint_type)

    return load_fine_tune_checkpoint

  def verify(self, model: Any, checkpoint_type: str) -> None:
    """Compares every restored variable with the checkpoint on every replica.

    Raises:
      RestoredValuesMismatchError: the verdict with the verification failed.
    """
    from od_guard.odapi import model as odapi_model
    from od_guard.restore import live_graph
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
    self.report = pipeline.amend(self.report, [found], training=True)
    self.publish(self.report)
    self.published = True
    if self.report.verdict.failed:
      raise replica_values.RestoredValuesMismatchError(result)
    print(f"od_guard: {found.title}", flush=True)


@contextlib.contextmanager
def verified_restore(verifier: RestoreVerifier | None) -> Iterator[None]:
  """For the duration: model_lib_v2's load_fine_tune_checkpoint is followed
  by `verifier.verify` (nothing is substituted when `verifier` is None)."""
  if verifier is None:
    yield
    return
  from object_detection import model_lib_v2

  original = model_lib_v2.load_fine_tune_checkpoint
  model_lib_v2.load_fine_tune_checkpoint = verifier.wrap(original)
  try:
    yield
  finally:
    model_lib_v2.load_fine_tune_checkpoint = original


@contextlib.contextmanager
def guarded_saves(rules_path: str | None, mode: str, log_dir: str | None) -> Iterator[None]:
  """For the duration: tf.train.CheckpointManager checks the naming rules at
  every save (model_lib_v2 builds its own manager, so the OD API's own saves
  are checked). Mode 'off' substitutes nothing.

  Args:
    rules_path: a TOML rules file (None: the odapi preset).
    mode: 'off', 'warn' or 'error'.
    log_dir: where violations go to TensorBoard (None: nowhere).
  """
  if mode == "off":
    yield
    return
  import tensorflow.compat.v2 as tf  # the module model_lib_v2 reads it from

  from od_guard.naming import rules as naming_rules
  from od_guard.naming import save_guard

  rules = naming_rules.load(
    rules_path, [] if rules_path else ["odapi"], flag="--guard_naming_rules"
  )
  original = tf.train.CheckpointManager
  tf.train.CheckpointManager = save_guard.guarded_manager_class(rules, mode=mode, log_dir=log_dir)
  try:
    yield
  finally:
    tf.train.CheckpointManager = original
