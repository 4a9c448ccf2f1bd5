"""model_dir as training will see it, by model_lib_v2's own resume semantics.

`model_lib_v2.train_loop` restores the fine-tune checkpoint first, then
`ckpt.restore(tf.train.latest_checkpoint(model_dir))` with the step, the whole
model and the optimizer, then trains `for _ in range(step, num_steps, n)`, and
saves through a CheckpointManager that rewrites `<model_dir>/checkpoint`.
`tf.train.latest_checkpoint` reads the `checkpoint` state file only: no state
file, an unreadable one, or one naming a checkpoint whose index is missing
means nothing resumes. Everything here reads metadata (and one int64 scalar),
no TensorFlow.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re

from od_guard import errors
from od_guard.checkpoint import fileio
from od_guard.checkpoint import inventory
from od_guard.checkpoint import paths
from od_guard.checkpoint import search
from od_guard.odapi import config as pipeline_config
from od_guard.restore import findings
from od_guard.restore import fingerprint as fingerprint_lib

Finding = findings.Finding
STEP_KEY = "step/.ATTRIBUTES/VARIABLE_VALUE"


def latest_checkpoint(model_dir: str) -> tuple[str | None, str]:
  """What `tf.train.latest_checkpoint(model_dir)` returns, and why.

  Returns:
    (prefix or None, a sentence on how it was decided).
  """
  state = fileio.join(model_dir, "checkpoint")
  if not fileio.exists(state):
    return None, f"no state file {state}"
  if fileio.isdir(state):
    return None, f"{state} is a directory, not a state file (TF ignores it)"
  try:
    named = paths.state_file_path(state)
  except (errors.OdGuardError, OSError) as e:
    return None, f"{state} is unreadable ({e})"
  if named is None:
    return None, f"{state} names no model_checkpoint_path (TF ignores it)"
  absolute = os.path.isabs(named) or "://" in named
  prefix = named if absolute else fileio.join(model_dir, named)
  if not fileio.exists(prefix + ".index"):
    return None, f"{state} names {named!r}, whose index does not exist (TF ignores it)"
  return prefix, f"{state} names {named!r}"


@dataclasses.dataclass(frozen=True)
class State:
  """A checkpoint directory as `tf.train.latest_checkpoint` (and the
  exporter's CheckpointManager) resolves it.

  Attributes:
    directory: the directory.
    prefix: what latest_checkpoint returns (None: nothing is restored).
    why: a sentence on how it was decided.
    named: the model_checkpoint_path the state file names ('' for none).
    on_disk: the prefixes whose .index is in the directory, by step (newest last).
  """

  directory: str
  prefix: str | None
  why: str
  named: str = ""
  on_disk: tuple[str, ...] = ()

  @property
  def newest(self) -> str | None:
    """The newest checkpoint on disk (what the state file should name)."""
    return self.on_disk[-1] if self.on_disk else None


def _step_of(name: str) -> tuple[int, str]:
  m = re.search(r"-(\d+)$", name)
  return (int(m.group(1)) if m else -1, name)


def checkpoints_on_disk(directory: str) -> tuple[str, ...]:
  """The prefixes of the checkpoints whose .index is in `directory`, oldest first."""
  try:
    names = [n[: -len(".index")] for n in fileio.listdir(directory) if n.endswith(".index")]
  except (errors.OdGuardError, OSError):
    return ()
  return tuple(fileio.join(directory, n) for n in sorted(names, key=_step_of))


def state(directory: str) -> State:
  """`latest_checkpoint(directory)` with what the state file names and what
  is on disk beside it."""
  prefix, why = latest_checkpoint(directory)
  named = ""
  state_file = fileio.join(directory, "checkpoint")
  if fileio.exists(state_file) and not fileio.isdir(state_file):
    try:
      named = paths.state_file_path(state_file) or ""
    except (errors.OdGuardError, OSError):
      named = ""
  return State(directory, prefix, why, named, checkpoints_on_disk(directory))


def _key(name: str) -> str:
  """A directory name as a typo sees it: case, '-', '_', '.' and blanks ignored."""
  return re.sub(r"[-_.\s]", "", name.lower())


def holds_checkpoints(directory: str) -> bool:
  """A state file or a checkpoint index in `directory`."""
  if not fileio.isdir(directory):
    return False
  state_file = fileio.join(directory, "checkpoint")
  return (fileio.exists(state_file) and not fileio.isdir(state_file)) or bool(
    checkpoints_on_disk(directory)
  )


def nearest_checkpoint_dir(missing: str) -> str | None:
  """The directory holding checkpoints nearest to `missing` (which does not
  exist): at the first component that does not exist, a sibling whose name
  differs only by case, '-', '_' or '.' (else a close spelling), with the
  rest of the path after it. Local paths only; None when nothing fits."""
  if fileio.is_remote(missing):
    return None
  path = os.path.abspath(missing)
  parts = []
  while not os.path.isdir(path):
    parent, name = os.path.split(path)
    if parent == path:
      return None
    parts.append(name)
    path = parent
  if not parts:
    return None
  head, rest = parts[-1], list(reversed(parts[:-1]))
  try:
    siblings = sorted(n for n in os.listdir(path) if os.path.isdir(os.path.join(path, n)))
  except OSError:
    return None
  same = [n for n in siblings if _key(n) == _key(head)]
  close = difflib.get_close_matches(head, siblings, n=3, cutoff=0.8)
  for name in [*same, *(n for n in close if n not in same)]:
    candidate = os.path.join(path, name, *rest)
    if holds_checkpoints(candidate):
      return candidate
  return None


def diagnose(
  model_dir: str | None,
  config: pipeline_config.FineTuneConfig | None = None,
  *,
  training: bool = True,
  num_train_steps: int | None = None,
) -> list[Finding]:
  """The model_dir findings: what resumes, whether it fits, whether any step is left.

  Args:
    model_dir: the training output directory (None: nothing to check).
    config: the parsed config (None: the fit and the step are not checked).
    training: the verdict gates a training run (nothing left to train is an error).
    num_train_steps: model_main_tf2's --num_train_steps (overrides num_steps).
  """
  if not model_dir or not fileio.isdir(model_dir):
    return []
  out: list[Finding] = []
  state = fileio.join(model_dir, "checkpoint")
  if fileio.isdir(state):
    out.append(_state_is_directory(model_dir, state))
  prefix, why = latest_checkpoint(model_dir)
  if prefix is None:
    out.extend(_checkpoints_without_state(model_dir, why))
    return out
  try:
    inv = inventory.read_inventory(prefix, object_graph=inventory.OBJECT_GRAPH_NONE)
  except errors.OdGuardError:
    return out
  mismatch = _fit(config, inv) if config is not None else []
  out.extend(mismatch)
  step = search.read_int64_scalar(prefix, STEP_KEY)
  steps = num_train_steps if num_train_steps else (config.num_steps if config else 0)
  if step is not None and steps and step >= steps:
    out.append(
      _nothing_to_train(prefix, step, steps, training=training, flag=bool(num_train_steps))
    )
  elif not mismatch:
    weightless = not inv.of_kind(inventory.MODEL)
    out.append(
      Finding(
        "stale_checkpoint_in_model_dir",
        findings.WARNING,
        "model_dir already holds a checkpoint: training resumes from it, and its values "
        "replace the fine-tune checkpoint's right after they are loaded.",
        detail=(
          f"{prefix} ({'weightless: step and save counter only' if weightless else f'{len(inv.of_kind(inventory.MODEL))} model values'}"
          + (f", step {step}" if step is not None else "")
          + f"); {why}"
        ),
        fix=(
          "To fine-tune afresh, use a new --model_dir (or empty this one); to resume "
          "on purpose, ignore this warning."
        ),
        stock_outcome="resumes silently from the model_dir checkpoint",
        data={"resume_from": prefix, "step": step},
      )
    )
  return out


def _state_is_directory(model_dir: str, state: str) -> Finding:
  return Finding(
    "checkpoint_state_is_directory",
    findings.ERROR,
    "model_dir holds a directory named 'checkpoint' (an unpacked zoo model folder?): "
    "training cannot write its checkpoint state file there.",
    detail=f"{state} is a directory",
    fix=(
      f"Use a new, empty --model_dir (e.g. {os.path.join(os.path.dirname(os.path.abspath(model_dir)), 'training')}); "
      "keep the zoo folder for fine_tune_checkpoint (its checkpoint/ckpt-0)."
    ),
    stock_outcome=(
      f"fails at the first checkpoint save: FailedPreconditionError: {state}.tmp...; Is a directory"
    ),
  )


def _checkpoints_without_state(model_dir: str, why: str) -> list[Finding]:
  try:
    names = sorted(n for n in fileio.listdir(model_dir) if n.endswith(".index"))
  except (errors.OdGuardError, OSError):
    return []
  if not names:
    return []
  return [
    Finding(
      "model_dir_checkpoints_not_resumed",
      findings.INFO,
      "model_dir holds checkpoints, but training will not resume from any of them.",
      detail=f"{', '.join(n[: -len('.index')] for n in names[:5])}; {why}",
      fix=(
        "Nothing to do to fine-tune afresh. To resume, a 'checkpoint' state file must "
        'name the checkpoint (model_checkpoint_path: "ckpt-N").'
      ),
      stock_outcome="starts from the fine-tune checkpoint, ignoring these",
    )
  ]


def _fit(config: pipeline_config.FineTuneConfig, inv: inventory.Inventory) -> list[Finding]:
  """The resumed checkpoint restores the whole model: its architecture and its
  heads must fit the config as under fine_tune_checkpoint_type "full"."""
  from od_guard.odapi import architecture

  if not inv.of_kind(inventory.MODEL):
    return []
  fp = fingerprint_lib.fingerprint(inv)
  as_full = dataclasses.replace(config, effective_checkpoint_type="full")
  problems = [f for f in architecture.diagnose(as_full, fp) if f.severity == findings.ERROR]
  if not problems:
    return []
  return [
    Finding(
      "model_dir_checkpoint_mismatch",
      findings.ERROR,
      "model_dir holds the checkpoint training would resume from, and it does not fit "
      "the configured model.",
      detail=f"{inv.prefix}: " + "; ".join(p.title for p in problems),
      fix=(
        "Use a new, empty --model_dir (this one holds another model's training), or "
        "delete its checkpoint files and 'checkpoint' state file."
      ),
      stock_outcome=(
        "ValueError: ... Shape mismatch when the resumed checkpoint is restored "
        "(after the fine-tune checkpoint was loaded)"
      ),
      data={"resume_from": inv.prefix, "causes": [p.code for p in problems]},
    )
  ]


def _nothing_to_train(
  prefix: str, step: int, steps: int, *, training: bool, flag: bool = False
) -> Finding:
  """`flag`: the steps come from --num_train_steps (which overrides num_steps)."""
  name = "--num_train_steps" if flag else "num_steps"
  raise_it = (
    f"raise --num_train_steps above {step} (e.g. --num_train_steps={step + steps})"
    if flag
    else f"raise num_steps above {step} (e.g. num_steps: {step + steps})"
  )
  return Finding(
    "model_dir_training_complete",
    findings.ERROR if training else findings.WARNING,
    f"model_dir's checkpoint is at step {step}, and {name} is {steps}: there is "
    "nothing left to train.",
    detail=f"{prefix} holds step {step}"
    + (" (--num_train_steps overrides the config's num_steps)" if flag else ""),
    fix=f"To train on, {raise_it}; to fine-tune afresh, use a new, empty --model_dir.",
    stock_outcome="exits 0 without training a single step",
    data={"step": step, "num_steps": steps},
  )
