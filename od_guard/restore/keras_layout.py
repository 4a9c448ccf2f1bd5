"""Diagnoses specific to Keras: whose layout a checkpoint has (Keras 3 or
tf-keras), layers whose auto-generated names moved (``dense_3`` saved,
``dense_7`` built), heads whose shapes changed with the number of classes,
restores deferred into a model that is not built yet, and TF checkpoints that
Keras 3's `load_weights` refuses.

Framework-level like `restore_diagnosis`: plain data in, findings out.
"""

from __future__ import annotations

import collections
import re

from od_guard.checkpoint import inventory
from od_guard.checkpoint import key_folding
from od_guard.checkpoint import keys as checkpoint_keys
from od_guard.restore import findings
from od_guard.restore import matching as restore_match

Finding = findings.Finding
KERAS3 = "keras3"
TF_KERAS = "tf_keras"
KERAS2 = "keras2"  # the `keras` package at 2.x: tf.keras in TF <= 2.15
NAMES = {KERAS3: "Keras 3", TF_KERAS: "tf-keras (Keras 2)", KERAS2: "Keras 2 (tf.keras)"}


def same_layout(a: str | None, b: str | None) -> bool:
  """Whether two Keras flavours write and read the same layouts (tf-keras and
  Keras 2 do: tf-keras is Keras 2, split out of TF)."""
  legacy = (TF_KERAS, KERAS2)
  return a == b or (a in legacy and b in legacy)


_AUTO_NAME = re.compile(r"^(?P<base>[a-z][a-z0-9_]*?)(_\d+)?$")
_LEAF_ALIASES = {"_kernel": "kernel", "_bias": "bias"}


def keras_file_flavour(inv: inventory.Inventory, model_flavour: str) -> Finding:
  """A Keras weight file written by the other Keras than the model's."""
  return Finding(
    "keras_file_flavour",
    findings.ERROR,
    f"A {inv.format.replace('_', ' ')} file cannot be loaded into a "
    f"{NAMES.get(model_flavour, model_flavour)} model with load_weights.",
    detail=inv.prefix,
    fix=(
      "Load it with the Keras that wrote it, or save the weights again from that "
      "Keras as a TF checkpoint (tf.train.Checkpoint), which od_guard can map."
    ),
  )


def checkpoint_layout(inv: inventory.Inventory) -> str | None:
  """Which Keras wrote the model values of a checkpoint, from its key layout."""
  if inv.format == inventory.KERAS3_WEIGHTS:
    return KERAS3
  if inv.format == inventory.KERAS2_HDF5:
    return TF_KERAS
  keys = [v.key for v in inv.of_kind(inventory.MODEL)]
  if any("/_operations/" in k or "/_kernel/" in k or k.endswith("/_kernel") for k in keys):
    return KERAS3
  if any("layer_with_weights-" in k or "layer-" in k.split("/")[1:2] for k in keys):
    return TF_KERAS
  return None


def _group(key: str) -> tuple[str, str]:
  """(layer prefix, normalised leaf) of a model key."""
  path, _ = checkpoint_keys.split_key(key)
  leaf = path[-1]
  return "/".join(path[:-1]), _LEAF_ALIASES.get(leaf, leaf)


def propose_key_map(
  report: restore_match.RestorePrediction, inv: inventory.Inventory
) -> dict[str, str]:
  """Pairs unused checkpoint values with missing variables layer by layer.

  Layers are taken in their natural order on both sides (layer_with_weights-2
  before -10, dense_3 before dense_12); a layer of the checkpoint pairs with
  the model's layer at the same position when both hold the same variables
  (by normalised name, else by shape). This is what turns a checkpoint of
  auto-named layers, or of the other Keras' layout, into the model's names.

  Returns:
    old checkpoint key -> the key the model expects; {} unless every missing
    variable pairs.
  """
  entries = inv.by_key()
  unused_groups: dict[str, dict[str, str]] = collections.defaultdict(dict)
  for key in report.unused:
    prefix, leaf = _group(key)
    unused_groups[prefix][leaf] = key
  missing_groups: dict[str, dict[str, restore_match.Unbound]] = collections.defaultdict(dict)
  for u in report.missing:
    parts = u.path.split("/")
    missing_groups["/".join(parts[:-1])][_LEAF_ALIASES.get(parts[-1], parts[-1])] = u
  old_layers = sorted(unused_groups, key=key_folding.natural_key)
  new_layers = sorted(missing_groups, key=key_folding.natural_key)
  if not new_layers or len(old_layers) < len(new_layers):
    return {}
  mapping: dict[str, str] = {}
  for old, new in zip(old_layers, new_layers):
    olds, news = unused_groups[old], missing_groups[new]
    if len(olds) != len(news):
      return {}
    if set(olds) == set(news):
      pairs = [(olds[leaf], news[leaf]) for leaf in news]
    else:  # leaf names differ: pair by shape, in order
      by_shape = sorted(olds.values(), key=lambda k: (entries[k].shape, k))
      wanted = sorted(news.values(), key=lambda u: (u.shape, u.path))
      pairs = list(zip(by_shape, wanted))
    for old_key, unbound in pairs:
      if tuple(entries[old_key].shape) != unbound.shape:
        return {}
      mapping[old_key] = checkpoint_keys.checkpoint_key(unbound.path)
  return mapping


def _layer_renames(mapping: dict[str, str]) -> list[str]:
  seen = []
  for old, new in mapping.items():
    pair = (_group(old)[0], _group(new)[0])
    if pair not in seen:
      seen.append(pair)
  return [f"{o} -> {n}" for o, n in seen]


def _only_last_dim_differs(m: restore_match.Mismatch) -> bool:
  """A layer whose output width changed: same rank, all but the last dim equal."""
  before, after = m.checkpoint, m.model
  return (
    len(before) == len(after)
    and bool(before)
    and before[:-1] == after[:-1]
    and before[-1] != after[-1]
  )


def diagnose(
  report: restore_match.RestorePrediction, inv: inventory.Inventory, *, model_flavour: str | None
) -> list[Finding]:
  """Keras findings for a predicted restore of `inv` into a Keras model."""
  out: list[Finding] = []
  layout = checkpoint_layout(inv)
  mapping = propose_key_map(report, inv) if report.missing and report.unused else {}
  if model_flavour and layout and not same_layout(layout, model_flavour) and not report.restored:
    names = NAMES
    out.append(
      Finding(
        "keras_layout_mismatch",
        findings.ERROR,
        f"The checkpoint has {names[layout]}'s layout; the model is {names[model_flavour]}: "
        "their object paths differ, so nothing binds.",
        detail=(
          f"checkpoint keys like {next(iter(report.unused), '?')}; the model expects "
          f"{checkpoint_keys.checkpoint_key(report.missing[0].path) if report.missing else '?'}"
        ),
        fix=(
          f"Restore with the Keras that saved it ({names[layout]}"
          + (", e.g. TF_USE_LEGACY_KERAS=1 with tf-keras" if layout == TF_KERAS else "")
          + "), or rewrite the checkpoint's keys"
          + (
            f": {len(mapping)} keys pair up layer by layer ("
            + "; ".join(_layer_renames(mapping)[:4])
            + ("; ..." if len(mapping) > 4 else "")
            + ")"
            if mapping
            else ""
          )
          + "."
        ),
        data={"key_map": mapping} if mapping else {},
      )
    )
  elif mapping:
    auto = list(_layer_renames(mapping))
    out.append(
      Finding(
        "auto_named_layers",
        findings.ERROR,
        f"{len(report.missing)} variables sit in layers whose names or positions differ "
        "between checkpoint and model (auto-generated names such as 'dense_3' change with "
        "construction order).",
        detail="\n".join(f"  {line}" for line in auto[:12]),
        fix=(
          "Give the layers explicit names (name='...') in the model that saves and the "
          "one that restores, or rewrite the checkpoint's keys with this map "
          "(data.key_map)."
        ),
        data={"key_map": mapping},
      )
    )
  heads = [m for m in report.shape_mismatches if _only_last_dim_differs(m)]
  if heads and len(heads) == len(report.shape_mismatches):
    layers = sorted({h.path.rsplit("/", 1)[0] for h in heads})
    out.append(
      Finding(
        "head_shape_changed",
        findings.ERROR,
        f"The output layer{'s' if len(layers) > 1 else ''} {', '.join(layers)} changed width "
        f"(checkpoint {heads[0].checkpoint}, model {heads[0].model}): the number of classes "
        "differs.",
        detail="\n".join(f"  {h.path}: {h.checkpoint} -> {h.model}" for h in heads),
        fix=(
          "Restore everything but the head and train it afresh: "
          f"exclude={layers!r} (RestoreGuard / od_guard.guarded_restore.restore)."
        ),
        data={"exclude": layers},
      )
    )
  return out


def deferred(inv: inventory.Inventory, unbuilt: list[str]) -> Finding:
  """The deferred-restore trap: values pending for a model that is not built."""
  pending = len(inv.of_kind(inventory.MODEL))
  return Finding(
    "deferred_restore",
    findings.ERROR,
    f"The model is not built: {pending} checkpoint values would wait for variables that "
    "do not exist yet, and `assert_existing_objects_matched()` would pass vacuously.",
    detail=(
      "not built: "
      + ", ".join(unbuilt[:12])
      + (" ..." if len(unbuilt) > 12 else "")
      + ". Variables created later that do not match stay random, with no error."
    ),
    fix=(
      "Build the model before restoring (call it on a batch, or model.build(shape)), or "
      "pass input_shape=... so od_guard builds it."
    ),
    stock_outcome="restores nothing now and reports nothing later",
  )


def tf_checkpoint_for_keras3() -> Finding:
  return Finding(
    "tf_checkpoint_for_keras3",
    findings.INFO,
    "Keras 3's model.load_weights refuses TF checkpoints; od_guard restored this one "
    "with tf.train.Checkpoint(model=model).",
    fix=(
      "In your own code use tf.train.Checkpoint(model=model).restore(path) (or "
      "od_guard.guarded_restore.restore), or save Keras 3 weights with "
      "model.save_weights('x.weights.h5')."
    ),
    stock_outcome=(
      "ValueError: File format not supported ... Keras 3 only supports V3 "
      "`.keras` and `.weights.h5` files, or legacy V1/V2 `.h5` files."
    ),
  )


def pair_layers(
  unbound: list[tuple[str, list[tuple[int, ...]]]],
  unused: list[tuple[str, list[tuple[int, ...]]]],
) -> dict[str, str]:
  """Pairs the model's layers that got nothing with the file's layers that fed
  nothing, in order, where their weights have the same shapes: the rename
  (old Keras names, leaked name counters, auto-suffixed names of a second
  model) that `load_weights(by_name=True)` does not see.

  Returns:
    model layer name -> file layer name.
  """
  out: dict[str, str] = {}
  start = 0
  for name, shapes in unbound:
    for i in range(start, len(unused)):
      if unused[i][1] == shapes:
        out[name] = unused[i][0]
        start = i + 1
        break
  return out


def by_name_unbound(
  *,
  bound: int,
  total: int,
  unbound_layers: list[str],
  file_layers: list[str],
  layer_map: dict[str, str],
  by_order_binds: bool,
  skip_mismatch: bool,
) -> Finding:
  """`load_weights(by_name=True)` that binds nothing, or leaves layers empty
  that the file holds under other names (stock Keras says nothing)."""
  shown = ", ".join(f"{m} <- {f}" for m, f in list(layer_map.items())[:6])
  options = []
  if by_order_binds:
    options.append(
      "the file's layers are the model's in the same order and shapes: load by topology "
      "(by_name=False), which binds every weight"
    )
  if layer_map:
    options.append(
      f"name the model's layers as the file does ({shown}"
      + ("; ..." if len(layer_map) > 6 else "")
      + "; data.layer_map)"
    )
  options.append(
    f"if these layers are to be trained afresh, say so: exclude={sorted(unbound_layers)[:6]!r}"
  )
  return Finding(
    "keras_by_name_unbound",
    findings.ERROR,
    f"load_weights(by_name=True{', skip_mismatch=True' if skip_mismatch else ''}) binds "
    f"{bound} of {total} weights: {len(unbound_layers)} layers of the model are not named "
    "in the file"
    + (
      f", and {len(layer_map)} of them match layers the file holds under other names."
      if layer_map
      else "."
    ),
    detail=(
      "no value for: "
      + ", ".join(unbound_layers[:12])
      + (" ..." if len(unbound_layers) > 12 else "")
      + "\nthe file's layers that feed nothing: "
      + (", ".join(file_layers[:12]) or "none")
      + (" ..." if len(file_layers) > 12 else "")
    ),
    fix=_sentence("; or ".join(options)),
    data={"layer_map": layer_map, "exclude": sorted(unbound_layers)},
    stock_outcome=f"silent: loads {bound} of {total} weights and leaves the rest random",
  )


def skip_mismatch_misses(*, skipped: list[str], skipped_params: int, total_params: int) -> Finding:
  """`skip_mismatch=True` that skipped most of the model, not a head."""
  return Finding(
    "keras_skip_mismatch_misses",
    findings.ERROR,
    f"skip_mismatch=True skips {len(skipped)} layers holding {skipped_params:,} of "
    f"{total_params:,} parameters: not a changed head, the file is for another model.",
    detail="skipped (shapes differ): "
    + ", ".join(skipped[:12])
    + (" ..." if len(skipped) > 12 else ""),
    fix=(
      "Load the weights the model was built for (the same variant, input channels and "
      "data_format); keep skip_mismatch for a head whose width changed."
    ),
    data={"skipped": skipped},
    stock_outcome="silent: logs a warning per layer and leaves those layers random",
  )


def _sentence(text: str) -> str:
  return text[:1].upper() + text[1:] + "."


LEGACY_OPTIMIZER = (
  "legacy"  # tf.keras.optimizers.legacy.* (OptimizerV2; the default before TF 2.11)
)
NEW_OPTIMIZER = "new"  # the optimizers of TF 2.11+ (tf.keras.optimizers.*), and Keras 3's
_LEGACY_OPTIMIZER_KEY = re.compile(r"/\.OPTIMIZER_SLOT/|(^|/)optimizer/iter/\.ATTRIBUTES/")
_NEW_OPTIMIZER_KEY = re.compile(r"(^|/)optimizer/(_iterations|_variables)/")


def checkpoint_optimizer(inv: inventory.Inventory) -> str | None:
  """Which optimizer generation wrote a TF checkpoint's optimizer state, from
  its keys: the legacy optimizer keeps slots beside each variable
  (`.OPTIMIZER_SLOT/optimizer/m`) and an `iter`; the new one keeps them in a
  list (`optimizer/_variables/N`) with `_iterations`."""
  keys = [v.key for v in inv.variables]
  if any(_LEGACY_OPTIMIZER_KEY.search(k) for k in keys):
    return LEGACY_OPTIMIZER
  if any(_NEW_OPTIMIZER_KEY.search(k) for k in keys):
    return NEW_OPTIMIZER
  return None


def optimizer_generation(saved: str, live: str, optimizer_class: str) -> Finding:
  """A checkpoint of one optimizer generation resumed into the other: the
  state does not map (a rename map cannot help)."""
  legacy_saved = saved == LEGACY_OPTIMIZER
  return Finding(
    "keras_optimizer_generation",
    findings.ERROR,
    (
      "The checkpoint's optimizer state was written by a legacy (pre-2.11) Keras optimizer; "
      f"the model's optimizer ({optimizer_class}) is the new one: their states do not map."
      if legacy_saved
      else "The checkpoint's optimizer state was written by the new (2.11+) Keras optimizer; "
      f"the model's optimizer ({optimizer_class}) is a legacy one: their states do not map."
    ),
    detail=(
      "legacy: slots beside each variable (.OPTIMIZER_SLOT/optimizer/m) and 'iter'; "
      "new: optimizer/_variables/N and optimizer/_iterations"
    ),
    fix=(
      (
        f"To resume with the saved state, compile with tf.keras.optimizers.legacy.{optimizer_class}"
        if legacy_saved
        else f"To resume with the saved state, compile with tf.keras.optimizers.{optimizer_class} "
        "(not .legacy)"
      )
      + "; or restore the model only (optimizer=False, the default; expect_partial() in "
      "stock code) and let the optimizer start with fresh slots."
    ),
    stock_outcome=(
      "ValueError: You are trying to restore a checkpoint from a legacy Keras optimizer into "
      "a v2.11+ Optimizer"
      if legacy_saved
      else "silent: the legacy optimizer takes none of the state (iterations restart at 0)"
    ),
  )


def layers_never_built(layers: list[tuple[str, int]], *, model_flavour: str | None) -> Finding:
  """Layers of a built model that have no variables: `call()` skips them.

  Args:
    layers: (layer name, how many checkpoint values wait for it).
    model_flavour: the model's Keras (Keras 3 applies no deferred values).
  """
  waiting = sum(n for _, n in layers)
  later = (
    "Keras 3 never applies them later: if the layer is used, it starts random"
    if model_flavour == KERAS3
    else "TF applies them when the layer first builds, unchecked"
  )
  return Finding(
    "keras_layers_never_built",
    findings.WARNING,
    f"{len(layers)} layer{'s' if len(layers) > 1 else ''} of the built model "
    f"{'have' if len(layers) > 1 else 'has'} no variables (call() never reaches "
    f"{'them' if len(layers) > 1 else 'it'}): " + ", ".join(name for name, _ in layers[:6]) + ".",
    detail=(
      "\n".join(f"  {name}: {n} checkpoint values wait for it" for name, n in layers[:12])
      + f"\n{waiting} values are not restored now; {later}."
    ),
    fix=(
      "Build those layers before restoring (run the call() path that uses them once, or "
      "layer.build(input_shape)); if they are never used, remove them from the model."
    ),
    data={"layers": [name for name, _ in layers]},
    stock_outcome="silent: assert_existing_objects_matched() passes; the values stay pending",
  )


def load_raised(error: BaseException, loader: str) -> Finding:
  """The restore itself raised where the prediction said it would pass: the
  report names it instead of a raw traceback leaving a callback."""
  return Finding(
    "keras_load_raised",
    findings.ERROR,
    f"{loader} raised {type(error).__name__} although od_guard predicted a clean restore.",
    detail=str(error)[:600],
    fix=(
      "Report this with the model and the file: od_guard's prediction missed what the "
      "loader checks. Meanwhile the message above is the loader's own."
    ),
  )
