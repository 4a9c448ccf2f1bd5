"""Naming tf.distribute strategies for reports, and who writes the reports."""

from __future__ import annotations

from typing import Any

# Classes whose public name differs from the class TF instantiates.
_PUBLIC_NAMES = {
  "CollectiveAllReduceStrategy": "MultiWorkerMirroredStrategy",
  "CollectiveAllReduceStrategyV1": "MultiWorkerMirroredStrategy",
  "TPUStrategyV2": "TPUStrategy",
}


def describe(strategy: Any) -> str:
  """E.g. 'MirroredStrategy (2 replicas)'."""
  name = type(strategy).__name__
  if name.startswith("_Default"):
    return "default strategy (no distribution, 1 replica)"
  replicas = getattr(strategy, "num_replicas_in_sync", 1)
  return f"{_PUBLIC_NAMES.get(name, name)} ({replicas} replica{'s' if replicas != 1 else ''})"


def is_chief(strategy: Any) -> bool:
  """Whether this worker writes shared outputs (reports, TensorBoard)."""
  return bool(getattr(getattr(strategy, "extended", None), "should_checkpoint", True))
