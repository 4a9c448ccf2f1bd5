"""Which part of a detector a variable belongs to, from its name alone.

Detectors are made of a backbone (the classification network), a neck (FPN,
FPNLite, BiFPN or the extra SSD feature maps), and heads that predict boxes and
classes. Coverage is reported per component, so a report can say "the
backbone restored fully, the class head stays random" instead of "412 of 534".

The rules recognise the OD API's TF2 object paths (``model/_feature_extractor/...``),
its TF1 scopes (``FeatureExtractor/MobilenetV2/...``), CenterNet's heads and
Faster R-CNN's two stages. Anything else is ``other``.
"""

from __future__ import annotations

import functools

BACKBONE = "backbone"
NECK = "neck"
BOX_HEAD = "box_head"
CLASS_HEAD = "class_head"
OTHER = "other"
ALL = (BACKBONE, NECK, BOX_HEAD, CLASS_HEAD, OTHER)

# Checked in order; the first rule with a matching fragment wins. Fragments are
# matched against the lower-cased path.
_RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
  (
    CLASS_HEAD,
    (
      "class_predictions",
      "classpredictiontower",
      "classpredictor",
      "_class_prediction_head",
      "_prediction_head_dict/center",
      "object_center",
      "/class_prediction_head",
    ),
  ),
  (
    BOX_HEAD,
    (
      "box_encodings",
      "boxpredictiontower",
      "predictiontower",
      "boxencodingpredictor",
      "_box_prediction_head",
      "box_predictor",
      "boxpredictor",
      "_prediction_head_dict/box",
      "box/scale",
      "box/offset",
      "_first_stage_box_predictor",
      "firststageboxpredictor",
      "secondstageboxpredictor",
    ),
  ),
  (
    NECK,
    (
      "_feature_extractor_model",  # CenterNet's upsampling layers
      "_fpn_features_generator",
      "/fpn",
      "bifpn",
      "_coarse_feature_layers",
      "feature_map_generator",
      "_feature_map_generator",
      "fpn_",
      "/top_layers",
    ),
  ),
  (
    BACKBONE,
    (
      "_feature_extractor",
      "featureextractor",
      "classification_backbone",
      "_efficientnet",
      "mobilenet",
      "resnet",
      "hourglass",
      "inception",
      "efficientnet",
      "firststagefeatureextractor",
      "secondstagefeatureextractor",
    ),
  ),
)


# Leaf names of variables (and list indices): they never carry a component, so
# paths that end in one are classified by their parent, which many variables
# share (cached).
_LEAVES = frozenset(
  {
    "kernel",
    "bias",
    "gamma",
    "beta",
    "moving_mean",
    "moving_variance",
    "depthwise_kernel",
    "pointwise_kernel",
    "weights",
    "biases",
    "embeddings",
    "scale",
    "offset",
    "variance",
    "mean",
  }
)


@functools.lru_cache(maxsize=1 << 16)
def _classify_lowered(lowered: str) -> str:
  for component, fragments in _RULES:
    if any(f in lowered for f in fragments):
      return component
  return OTHER


_BY_HEAD: dict[str, str] = {}


def classify(path: str) -> str:
  """Returns the component of a model variable, given its path.

  Args:
    path: the variable's object path (TF2) or name (TF1), '/'-separated.

  Returns:
    One of BACKBONE, NECK, BOX_HEAD, CLASS_HEAD, OTHER.
  """
  head, _, leaf = path.rpartition("/")
  if head and (leaf in _LEAVES or leaf.isdigit()):
    component = _BY_HEAD.get(head)
    if component is None:
      component = _BY_HEAD[head] = _classify_lowered(head.lower() + "/")
    return component
  return _classify_lowered(path.lower())
