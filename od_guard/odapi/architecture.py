"""The checkpoint's architecture against the config's, from its fingerprint.

The meta-architecture first (nothing else compares across them), then each
part: the feature extractor, the neck (FPN), the backbone's width
(depth_multiplier) and the number of classes. These are guesses from the
checkpoint's metadata: a model-built restore that binds every variable
overrules them (`restore.decide.ARCHITECTURE_GUESSES`).
"""

from __future__ import annotations

from od_guard.odapi import config as pipeline_config
from od_guard.restore import findings
from od_guard.restore import fingerprint as fingerprint_lib

Finding = findings.Finding
STOCK_UNBOUND = (
  "AssertionError: Found {n} Python objects that were not bound to "
  "checkpointed values, likely due to changes in the Python program."
)
STOCK_SHAPE_MISMATCH = "ValueError: Cannot assign value to variable '...': Shape mismatch"


def diagnose(
  config: pipeline_config.FineTuneConfig, fp: fingerprint_lib.Fingerprint
) -> list[Finding]:
  """The fingerprint's architecture against the config's (also for model_dir's
  checkpoint): the meta-architecture first, then each part."""
  mismatch = _meta_architecture(config, fp)
  if mismatch:
    return mismatch
  checks = (_feature_extractor, _neck, _depth_multiplier, _num_classes)
  return [finding for check in checks for finding in check(config, fp)]


def _architecture_error(
  code: str,
  title: str,
  *,
  detail: str,
  fix: str,
  stock_outcome: str = STOCK_UNBOUND.format(n="N"),
  data: dict | None = None,
) -> list[Finding]:
  """The finding of a part of the checkpoint's architecture that the config does not build."""
  return [
    Finding(
      code,
      findings.ERROR,
      title,
      detail=detail,
      fix=fix,
      stock_outcome=stock_outcome,
      data=data or {},
    )
  ]


def _ssd_parts_compare(
  config: pipeline_config.FineTuneConfig, fp: fingerprint_lib.Fingerprint
) -> bool:
  """Whether the checkpoint's neck and depth multiplier can be held against the
  config's: both are SSDs with the same feature extractor."""
  return (
    config.meta_architecture == "ssd"
    and config.feature_extractor_type in fp.feature_extractor_types
  )


def _meta_architecture(
  config: pipeline_config.FineTuneConfig, fp: fingerprint_lib.Fingerprint
) -> list[Finding]:
  if fp.meta_architecture and fp.meta_architecture != config.meta_architecture:
    return _architecture_error(
      "meta_architecture_mismatch",
      f"The checkpoint is a {fp.describe()} model; the config builds a "
      f"{config.meta_architecture} model.",
      detail="; ".join(fp.evidence),
      fix=(
        f"Use a {config.meta_architecture} checkpoint, or a config for "
        f"{fp.meta_architecture} (feature_extractor.type: "
        f"{', '.join(fp.feature_extractor_types) or 'see the zoo'})."
      ),
    )
  return []


def _feature_extractor(
  config: pipeline_config.FineTuneConfig, fp: fingerprint_lib.Fingerprint
) -> list[Finding]:
  if fp.feature_extractor_types and config.feature_extractor_type not in fp.feature_extractor_types:
    fits = " or ".join(f'"{t}"' for t in fp.feature_extractor_types)
    fix = (
      f"Set feature_extractor {{ type: {fits} }} (and a config for that model), or "
      f"point fine_tune_checkpoint at a {config.feature_extractor_type} checkpoint."
    )
    return _architecture_error(
      "feature_extractor_mismatch",
      f'The config\'s feature extractor "{config.feature_extractor_type}" does not match '
      f"the checkpoint, which is {fp.describe()}.",
      detail="; ".join(fp.evidence),
      fix=fix,
      stock_outcome=(
        f"{STOCK_SHAPE_MISMATCH} (or the 'not bound to checkpointed values' AssertionError)"
      ),
      data={"fitting_types": list(fp.feature_extractor_types)},
    )
  return []


def _neck(config: pipeline_config.FineTuneConfig, fp: fingerprint_lib.Fingerprint) -> list[Finding]:
  fpnlite = fp.neck == "fpnlite"
  if (
    fp.neck in ("fpn", "fpnlite")
    and _ssd_parts_compare(config, fp)
    and fpnlite != config.use_depthwise
  ):
    return _architecture_error(
      "neck_mismatch",
      f"The checkpoint's FPN is {'FPNLite (separable convolutions)' if fpnlite else 'a regular FPN'}; "
      f"the config asks for {'separable' if config.use_depthwise else 'regular'} convolutions.",
      detail=f"feature_extractor.use_depthwise: {str(config.use_depthwise).lower()}",
      fix=f"Set feature_extractor {{ use_depthwise: {str(fpnlite).lower()} }}",
    )
  return []


def _depth_multiplier(
  config: pipeline_config.FineTuneConfig, fp: fingerprint_lib.Fingerprint
) -> list[Finding]:
  if (
    fp.depth_multiplier is not None
    and _ssd_parts_compare(config, fp)
    and abs(fp.depth_multiplier - config.depth_multiplier) > 1e-6
  ):
    return _architecture_error(
      "depth_multiplier_mismatch",
      f"The checkpoint's depth multiplier is {fp.depth_multiplier:g}; the config's is "
      f"{config.depth_multiplier:g}.",
      detail="; ".join(fp.evidence),
      fix=f"Set feature_extractor {{ depth_multiplier: {fp.depth_multiplier:g} }}",
      stock_outcome=STOCK_SHAPE_MISMATCH,
    )
  return []


def _num_classes(
  config: pipeline_config.FineTuneConfig, fp: fingerprint_lib.Fingerprint
) -> list[Finding]:
  out: list[Finding] = []
  ctype = config.effective_checkpoint_type
  classes = fp.num_classes(config.add_background_class)
  if classes is not None and classes != config.num_classes:
    heads_restored = ctype == "full"
    out.append(
      Finding(
        "num_classes_differ",
        findings.ERROR if heads_restored else findings.INFO,
        f"The checkpoint was trained for {classes} classes; the config has {config.num_classes}.",
        detail=("; ".join(e for e in fp.evidence if "head" in e)),
        fix=(
          f'With fine_tune_checkpoint_type "full" the heads must match: set '
          f'num_classes: {classes}, or use "detection" to restore all but the heads.'
          if heads_restored
          else ""
        ),
        stock_outcome=(
          STOCK_SHAPE_MISMATCH
          if heads_restored
          else f'expected under "{ctype}": the heads are not restored and start fresh'
        ),
      )
    )
  return out
