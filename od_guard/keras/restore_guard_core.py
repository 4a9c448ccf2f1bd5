"""What the `RestoreGuard` callbacks do, for either Keras.

`RestoreGuardCore` holds the callbacks' arguments (checked in `__init__`) and
their one hook, `on_train_begin`, which hands the model to
`guarded_restore.restore`. It imports no Keras: `callbacks.RestoreGuard`
mixes it into `keras.callbacks.Callback`, `tf_keras_callbacks.TfKerasRestoreGuard`
into `tf_keras.callbacks.Callback`.
"""

from __future__ import annotations

from collections.abc import Sequence
import os
from typing import Any

from od_guard import errors
from od_guard.keras import arguments
from od_guard.keras import guarded_restore
from od_guard.restore import policy as policy_lib


class RestoreGuardCore:
  """Guards the restore of `checkpoint` into the model before training.

  In `on_train_begin`, before the first batch: builds the model if asked
  (`input_shape`), predicts and diagnoses the restore, applies the policy,
  restores, and verifies the values on every replica. A failing verdict raises
  `RestoreGuardError`, which stops `fit` before the first batch.

  Args:
    checkpoint: a TF checkpoint (prefix, directory, .index ...) or a Keras
      weights file (.weights.h5 / .keras for Keras 3, .h5 for Keras 2).
    policy: an `od_guard.Policy` (default: the 'default' preset).
    input_shape: builds the model from this shape if `fit` has not built it
      yet (tf-keras builds lazily, on the first batch).
    exclude: object-path prefixes not to restore (e.g. a new head), or for a
      Keras weights file prefixes of its dataset paths, as findings propose.
    optimizer: also restore (and require) the optimizer's state; by default
      only the model is restored (a compiled model does not need the
      checkpoint's optimizer).
    by_name, skip_mismatch: for a Keras 2 .h5 file, load by layer name (and
      skip weights whose shapes differ), as `model.load_weights` does; a load
      that binds nothing, or misses layers the file holds under other names,
      fails.
    log_dir: TensorBoard log directory (the report goes to its 'train' run).
    report_path: where to write the JSON report.
    verify: check the restored values on every replica.
    quiet: do not print the text report.
    consensus_timeout: under MultiWorkerMirroredStrategy, seconds every worker
      waits for the others' verdicts (a worker that has not arrived by then
      stops them all before the first batch).

  Attributes:
    report: the `od_guard.Report` of the restore, once training began.

  Raises:
    UsageError: an argument has the wrong type or form.
  """

  def __init__(
    self,
    checkpoint: str | os.PathLike,
    *,
    policy: policy_lib.Policy | None = None,
    input_shape: Sequence[int | None] | None = None,
    exclude: Sequence[str] = (),
    optimizer: bool = False,
    by_name: bool = False,
    skip_mismatch: bool = False,
    log_dir: str | os.PathLike | None = None,
    report_path: str | os.PathLike | None = None,
    verify: bool = True,
    quiet: bool = False,
    consensus_timeout: float = guarded_restore.consensus.DEFAULT_TIMEOUT,
  ):
    super().__init__()
    if policy is not None and not isinstance(policy, policy_lib.Policy):
      raise errors.UsageError(
        "Argument `policy` must be an od_guard Policy or None.",
        received=f"policy={policy!r}",
        fix="Pass a preset, e.g. policy=od_guard.policy('strict'), or leave it out.",
      )
    self.checkpoint = arguments.path("checkpoint", checkpoint)
    self.policy = policy
    self.input_shape = arguments.shape("input_shape", input_shape)
    self.exclude = arguments.strings("exclude", exclude, example="model/head")
    self.log_dir = arguments.path("log_dir", log_dir, optional=True)
    self.report_path = arguments.path("report_path", report_path, optional=True)
    self.optimizer = bool(optimizer)
    self.by_name = bool(by_name)
    self.skip_mismatch = bool(skip_mismatch)
    self.verify = verify
    self.quiet = quiet
    self.consensus_timeout = arguments.seconds("consensus_timeout", consensus_timeout)
    self.report = None

  def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
    del logs
    self.report = guarded_restore.restore(
      self.model,
      self.checkpoint,
      policy=self.policy,
      input_shape=self.input_shape,
      exclude=self.exclude,
      optimizer=self.optimizer,
      by_name=self.by_name,
      skip_mismatch=self.skip_mismatch,
      verify=self.verify,
      log_dir=self.log_dir,
      report_path=self.report_path,
      quiet=self.quiet,
      consensus_timeout=self.consensus_timeout,
    )
