"""Diagnoses from a predicted restore (`restore_match.RestorePrediction`).

Framework-level: used by the OD API preflight and the Keras guards alike.
Turns "412 restored, 120 missing, 120 unused" into causes: a systematic
renaming between model and checkpoint (with the rename map that repairs it),
shapes that cannot be assigned, and what stays freshly initialised.
"""

from __future__ import annotations

import collections

from od_guard.checkpoint import inventory
from od_guard.checkpoint import key_folding
from od_guard.restore import findings
from od_guard.restore import matching as restore_match
from od_guard.restore import renames as renames_lib

Finding = findings.Finding


def _fold(paths, limit=8) -> str:
  return "\n".join("  " + line for line in key_folding.fold_keys(paths, limit=limit))


def diagnose(
  report: restore_match.RestorePrediction,
  inv: inventory.Inventory,
  *,
  root_hint: str = "",
  stock_assertion: bool = True,
) -> list[Finding]:
  """Findings for a predicted restore.

  Args:
    report: the predicted restore.
    inv: the checkpoint's inventory.
    root_hint: how the restore roots were chosen (e.g. 'fine_tune_checkpoint_type
      "detection" restores model/_feature_extractor'), for messages.
    stock_assertion: the caller restores with `assert_existing_objects_matched`
      (the OD API does), so missing objects raise rather than pass silently.
  """
  return [
    *_missing(report, inv, root_hint, stock_assertion),
    *_shape_mismatches(report),
    *_dtype_mismatches(report),
    *_unused(report, inv),
    *_not_requested(report, root_hint),
  ]


def _missing(
  report: restore_match.RestorePrediction,
  inv: inventory.Inventory,
  root_hint: str,
  stock_assertion: bool,
) -> list[Finding]:
  """Variables the restore asks for without a value, and the renaming that explains them."""
  out: list[Finding] = []
  if report.missing:
    renames = renames_lib.propose_renames(report, inv)
    by_component = collections.Counter(u.component for u in report.missing)
    if renames:
      covered = sum(r.count for r in renames)
      out.append(
        Finding(
          "renamed_scopes",
          findings.ERROR,
          f"{len(report.missing)} variables are saved under other names: the checkpoint's "
          "scopes were renamed.",
          detail="\n".join(f"  {r.text()}  ({r.count} variables)" for r in renames),
          fix=(
            "Rewrite the checkpoint's names with this map: "
            + "; ".join(f"'{r.old}' -> '{r.new}'" for r in renames)
            + f" (it binds {covered} of {len(report.missing)} missing variables). "
            "Or save from a model whose attributes carry the expected names."
          ),
          stock_outcome=_unbound(report)
          if stock_assertion
          else "trains with these variables freshly initialised",
          data={"renames": [r.to_dict() for r in renames]},
        )
      )
    out.append(
      Finding(
        "variables_not_restored",
        findings.ERROR,
        f"{len(report.missing)} variables the restore asks for have no value in the "
        "checkpoint; they would stay freshly initialised.",
        detail=(
          ", ".join(f"{c}: {n}" for c, n in by_component.most_common())
          + (f" ({root_hint})" if root_hint else "")
          + "\n"
          + _fold([u.path for u in report.missing])
        ),
        fix=(
          "Use a checkpoint saved from the same architecture, or restore only what the "
          "checkpoint has (OD API: the fine_tune_checkpoint_type; Keras: exclude=...)."
        ),
        stock_outcome=_unbound(report)
        if stock_assertion
        else "trains with these variables freshly initialised",
      )
    )
  return out


def _shape_mismatches(report: restore_match.RestorePrediction) -> list[Finding]:
  out: list[Finding] = []
  if report.shape_mismatches:
    first = report.shape_mismatches[0]
    out.append(
      Finding(
        "shape_mismatch",
        findings.ERROR,
        f"{len(report.shape_mismatches)} variables have other shapes in the checkpoint "
        "than in the model.",
        detail="\n".join(
          f"  {m.path}: checkpoint {m.checkpoint}, model {m.model}"
          for m in report.shape_mismatches[:8]
        )
        + (
          f"\n  ... and {len(report.shape_mismatches) - 8} more"
          if len(report.shape_mismatches) > 8
          else ""
        ),
        fix=(
          "The checkpoint and the config describe different networks: align the "
          "config with the checkpoint (architecture, depth multiplier, num_classes "
          'under "full"), or use a checkpoint of the configured model.'
        ),
        stock_outcome=(
          f"ValueError: Cannot assign value to variable '{first.path}': Shape "
          f"mismatch. The variable shape {first.model}, and the assigned value "
          f"shape {first.checkpoint} are incompatible."
        ),
      )
    )
  return out


def _dtype_mismatches(report: restore_match.RestorePrediction) -> list[Finding]:
  out: list[Finding] = []
  if report.dtype_mismatches:
    out.append(
      Finding(
        "dtype_mismatch",
        findings.ERROR,
        f"{len(report.dtype_mismatches)} variables have another dtype in the checkpoint.",
        detail="\n".join(
          f"  {m.path}: checkpoint {m.checkpoint}, model {m.model}"
          for m in report.dtype_mismatches[:8]
        ),
        fix="Match the model's dtype policy (e.g. mixed precision) to the checkpoint's.",
      )
    )
  return out


def _unused(report: restore_match.RestorePrediction, inv: inventory.Inventory) -> list[Finding]:
  out: list[Finding] = []
  if report.unused:
    by_component = collections.Counter(inv.by_key()[k].component for k in report.unused)
    out.append(
      Finding(
        "unused_checkpoint_values",
        findings.INFO,
        f"{len(report.unused)} model values in the checkpoint are not used by this restore.",
        detail=(
          ", ".join(f"{c}: {n}" for c, n in by_component.most_common())
          + "\n"
          + _fold(report.unused)
        ),
      )
    )
  return out


def _not_requested(report: restore_match.RestorePrediction, root_hint: str) -> list[Finding]:
  out: list[Finding] = []
  if report.not_requested:
    by_component = collections.Counter(u.component for u in report.not_requested)
    out.append(
      Finding(
        "not_requested",
        findings.INFO,
        f"{len(report.not_requested)} variables are outside what this restore asks for "
        "and start freshly initialised.",
        detail=", ".join(f"{c}: {n}" for c, n in by_component.most_common())
        + (f" ({root_hint})" if root_hint else ""),
      )
    )
  return out


def _unbound(report: restore_match.RestorePrediction) -> str:
  n = report.unmatched_objects or len(report.missing)
  return (
    f"AssertionError: Found {n} Python objects that were not bound to checkpointed "
    "values, likely due to changes in the Python program."
  )
