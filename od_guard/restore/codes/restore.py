"""The codes of the predicted restore (matching and diagnosis), the checkpoint's values,
the real restore verified on every replica, and the workers' agreement."""

from __future__ import annotations

from od_guard.restore.codes._code import ERROR
from od_guard.restore.codes._code import INFO
from od_guard.restore.codes._code import UNBOUND as _UNBOUND
from od_guard.restore.codes._code import WARNING
from od_guard.restore.codes._code import Code

_DIAGNOSIS = "od_guard.restore.diagnosis"
_VALUES = "od_guard.restore.value_health"
_REPLICAS = "od_guard.restore.replica_values"
_CONSENSUS = "od_guard.restore.consensus"
_POLICY = "od_guard.restore.policy"

CODES = (
  # --- The predicted restore (model tier).
  Code(
    "variables_not_restored",
    ERROR,
    "Variables the restore asks for have no value in the checkpoint.",
    _DIAGNOSIS,
    "Restore from a checkpoint that has them, or exclude them from the restore.",
    _UNBOUND + " (or trains them freshly initialised, silently)",
  ),
  Code(
    "renamed_scopes",
    ERROR,
    "The variables are saved under other names: the checkpoint's scopes were renamed.",
    _DIAGNOSIS,
    "Rename the checkpoint's keys with the proposed map (`od-guard remap`).",
    _UNBOUND,
  ),
  Code(
    "shape_mismatch",
    ERROR,
    "Variables have other shapes in the checkpoint than in the model.",
    _DIAGNOSIS,
    "Fix the config (classes, backbone, depth) or restore less.",
    "ValueError: Cannot assign value to variable ...: Shape mismatch.",
  ),
  Code(
    "dtype_mismatch",
    ERROR,
    "Variables have another dtype in the checkpoint than in the model.",
    _DIAGNOSIS,
    "Build the model with the checkpoint's dtype policy (mixed precision?).",
  ),
  Code(
    "unused_checkpoint_values",
    INFO,
    "Model values in the checkpoint that this restore does not use.",
    _DIAGNOSIS,
  ),
  Code(
    "not_requested",
    INFO,
    "Variables outside what the restore asks for start freshly initialised.",
    _DIAGNOSIS,
  ),
  Code(
    "coverage_below_threshold",
    ERROR,
    "Too small a fraction of the backbone's (or neck's) parameters restores for the policy.",
    _POLICY,
    "Fix the causes named beside it, or lower --guard_min_backbone_coverage.",
  ),
  # --- The checkpoint's values.
  Code(
    "checkpoint_value_corrupt",
    ERROR,
    "Values the restore assigns are damaged (CRC32C mismatch or unreadable).",
    _VALUES,
    "Download or copy the checkpoint again.",
    "DataLossError when the restore reads the damaged value",
  ),
  Code(
    "checkpoint_value_corrupt_unrestored",
    WARNING,
    "Saved values this restore does not assign are damaged.",
    _VALUES,
    "Copy the checkpoint again before restoring it elsewhere.",
  ),
  Code(
    "nan_inf_in_restored_values",
    ERROR,
    "Values the restore assigns hold NaN or Inf: the run that saved them diverged.",
    _VALUES,
    "Restore from an earlier checkpoint of that run.",
    "trains on NaN: the loss is NaN from the first step",
  ),
  Code(
    "nan_inf_in_unrestored_values",
    WARNING,
    "Saved values this restore does not assign hold NaN or Inf (e.g. optimizer slots).",
    _VALUES,
  ),
  Code(
    "nonpositive_moving_variance",
    WARNING,
    "Batch-norm moving variances the restore assigns have elements <= 0.",
    _VALUES,
    "Restore from another checkpoint, or check how it was written.",
  ),
  Code(
    "constant_restored_kernels",
    INFO,
    "Restored weight tensors are all zero or constant (untrained?).",
    _VALUES,
  ),
  Code(
    "checkpoint_values_verified",
    INFO,
    "Every value checked was read, its CRC32C matched and it is finite.",
    _VALUES,
  ),
  # --- The real restore, verified on every replica.
  Code(
    "restore_not_applied",
    ERROR,
    "After the restore, values differ from the checkpoint on some replica.",
    _REPLICAS,
    "Report this with the model and checkpoint: the restore did not do what it promised.",
  ),
  Code(
    "restore_verified",
    INFO,
    "After the restore, every restored value holds the checkpoint's value on every replica.",
    _REPLICAS,
  ),
  # --- Multi-worker agreement.
  Code(
    "workers_disagree",
    ERROR,
    "The workers' preflights disagree (another checkpoint, config or verdict).",
    _CONSENSUS,
    "Give every worker the same config and checkpoint.",
    "the healthy workers fail later, in a collective, with a misleading error",
  ),
  Code(
    "workers_missing",
    ERROR,
    "A worker did not report its preflight within the consensus timeout.",
    _CONSENSUS,
    "Start every worker, or raise --guard_consensus_timeout.",
    "the healthy workers wait in a collective until it times out",
  ),
)
