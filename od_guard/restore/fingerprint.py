"""What a detection checkpoint is, from its names and shapes alone.

A fingerprint names the checkpoint's meta-architecture (SSD, Faster R-CNN,
CenterNet), its backbone (MobileNet V1/V2, ResNet 50/101/152, EfficientNet
B0-B7, Hourglass, Inception-ResNet V2), its neck (FPN, FPNLite, BiFPN), the
OD API `feature_extractor.type` values that would build the same variables,
and, where the heads' shapes reveal it, the number of classes and the depth
multiplier. It works from the index alone, so it also works on checkpoints
whose data shard is missing.

The rules come from the OD API's Keras feature extractors: stem shapes,
numbers of depthwise and regular convolutions, top-layer widths, and the
object paths the meta-architectures give their heads.
"""

from __future__ import annotations

import dataclasses
import re

from od_guard.checkpoint import components
from od_guard.checkpoint import inventory

# EfficientNet B0..B7: (stem filters, top filters, number of MBConv blocks).
_EFFICIENTNET = {
  "b0": (32, 1280, 16),
  "b1": (32, 1280, 23),
  "b2": (32, 1408, 23),
  "b3": (40, 1536, 26),
  "b4": (48, 1792, 32),
  "b5": (48, 2048, 39),
  "b6": (56, 2304, 45),
  "b7": (64, 2560, 55),
}
# Regular (non-depthwise) convolutions of ResNet v1 / v2, shortcuts included.
_RESNET_CONVS = {53: "resnet50", 104: "resnet101", 155: "resnet152"}

SSD = "ssd"
FASTER_RCNN = "faster_rcnn"
CENTER_NET = "center_net"

DETECTION = "detection"
CLASSIFICATION = "classification"
WEIGHTLESS = "weightless"
UNKNOWN = "unknown"


@dataclasses.dataclass(frozen=True)
class Fingerprint:
  """What the checkpoint was saved from.

  Attributes:
    checkpoint_kind: DETECTION (root object 'model', as model_main_tf2 saves),
      CLASSIFICATION (root 'feature_extractor'), WEIGHTLESS (no model values,
      e.g. model_main_tf2's step-0 checkpoint), or UNKNOWN.
    root_objects: the root's children (object graph, or the keys' first parts).
    meta_architecture: SSD, FASTER_RCNN, CENTER_NET or None.
    backbone: e.g. 'mobilenet_v2', 'resnet50', 'efficientnet-b0', or None.
    neck: 'fpn', 'fpnlite', 'bifpn', 'ssd_feature_maps' or None.
    feature_extractor_types: the `feature_extractor.type` values that fit.
    class_slots: class outputs per anchor / location (num_classes, plus one if
      the model adds a background class), or None.
    box_outputs_per_location: anchors per location times 4, or None.
    depth_multiplier: MobileNet depth multiplier from the stem width, or None.
    evidence: how each conclusion was reached, for the report.
  """

  checkpoint_kind: str
  root_objects: tuple[str, ...]
  meta_architecture: str | None = None
  backbone: str | None = None
  neck: str | None = None
  feature_extractor_types: tuple[str, ...] = ()
  class_slots: int | None = None
  box_outputs_per_location: int | None = None
  depth_multiplier: float | None = None
  evidence: tuple[str, ...] = ()

  def num_classes(self, add_background_class: bool | None = None) -> int | None:
    """The number of classes, given whether the model adds a background slot.

    With add_background_class None, the OD API's zoo conventions decide:
    EfficientDet (BiFPN) and CenterNet have none, the others have one.
    """
    if self.class_slots is None:
      return None
    if self.meta_architecture == CENTER_NET:
      return self.class_slots  # CenterNet's heatmap has one channel per class, no background
    if add_background_class is None:
      add_background_class = self.neck != "bifpn" and self.meta_architecture != CENTER_NET
    return self.class_slots - (1 if add_background_class else 0)

  def describe(self) -> str:
    parts = [
      self.meta_architecture.upper().replace("_", " ")
      if self.meta_architecture
      else "unknown meta-architecture"
    ]
    if self.backbone:
      parts.append(
        self.backbone.replace("_", " ")
        .replace("mobilenet", "MobileNet")
        .replace("resnet", "ResNet")
        .replace("efficientnet", "EfficientNet")
      )
    if self.neck and self.neck != "ssd_feature_maps":
      parts.append({"fpn": "FPN", "fpnlite": "FPNLite", "bifpn": "BiFPN"}[self.neck])
    return " ".join(parts)

  def to_dict(self) -> dict:
    d = dataclasses.asdict(self)
    d["root_objects"] = list(self.root_objects)
    d["feature_extractor_types"] = list(self.feature_extractor_types)
    d["evidence"] = list(self.evidence)
    d["num_classes"] = self.num_classes()
    d["description"] = self.describe()
    return d


def _root_objects(inv: inventory.Inventory) -> tuple[str, ...]:
  if inv.object_graph is not None:
    return inv.object_graph.root_children
  roots = []
  for v in inv.variables:
    root = v.path.split("/", 1)[0]
    if root not in roots:
      roots.append(root)
  return tuple(roots)


def _kind(inv: inventory.Inventory, roots: tuple[str, ...]) -> str:
  model_values = inv.of_kind(inventory.MODEL)
  if not model_values:
    return WEIGHTLESS
  top = {v.path.split("/", 1)[0] for v in model_values}
  if "model" in top:
    return DETECTION
  if "feature_extractor" in top:
    return CLASSIFICATION
  if inv.format == inventory.TF1_NAME_BASED and any(
    v.path.startswith(("FeatureExtractor/", "FirstStageFeatureExtractor/")) for v in model_values
  ):
    return DETECTION
  del roots
  return UNKNOWN


def _meta_architecture(paths: list[str]) -> tuple[str | None, str]:
  joined = "\n".join(paths)
  if "_prediction_head_dict" in joined:
    return CENTER_NET, "CenterNet prediction heads (_prediction_head_dict)"
  if (
    "_first_stage_box_predictor" in joined
    or "_feature_extractor_for_proposal_features" in joined
    or "FirstStageFeatureExtractor" in joined
  ):
    return FASTER_RCNN, "Faster R-CNN first-stage objects (_first_stage_box_predictor)"
  if (
    "_box_predictor" in joined
    or re.search(r"^BoxPredictor", joined, re.M)
    or "WeightSharedConvolutionalBoxPredictor" in joined
  ):
    return SSD, "SSD box predictor (_box_predictor)"
  return None, ""


def _kernels(variables) -> list[inventory.Variable]:
  return [v for v in variables if len(v.shape) == 4]


def _backbone(
  backbone_vars: list[inventory.Variable], all_paths: str
) -> tuple[str | None, float | None, str]:
  kernels = _kernels(backbone_vars)
  if not kernels:
    return None, None, ""
  depthwise = [
    k
    for k in kernels
    if k.path.endswith("depthwise_kernel")
    or (k.shape[3] == 1 and k.shape[0] == k.shape[1] == 3 and k.shape[2] > 3)
  ]
  regular = [k for k in kernels if k not in depthwise]
  stems = [k for k in regular if k.shape[2] == 3]
  stem = stems[0] if stems else None
  if "_efficientnet" in all_paths or "efficientnet" in all_paths.lower():
    tops = {k.shape[3] for k in regular if k.shape[:2] == (1, 1)}
    stem_filters = stem.shape[3] if stem else None
    for name, (s, top, blocks) in _EFFICIENTNET.items():
      if stem_filters == s and top in tops and len(depthwise) == blocks:
        return (
          f"efficientnet-{name}",
          None,
          f"EfficientNet stem {s} filters, top {top} filters, {blocks} MBConv blocks",
        )
    for name, (s, _top, blocks) in _EFFICIENTNET.items():
      if len(depthwise) == blocks and stem_filters == s:
        return (
          f"efficientnet-{name}",
          None,
          f"EfficientNet stem {s} filters, {blocks} MBConv blocks",
        )
    return "efficientnet", None, f"EfficientNet ({len(depthwise)} MBConv blocks)"
  if "hourglass" in all_paths.lower():
    return "hourglass", None, "hourglass network"
  if any(k.shape[:2] in ((1, 7), (7, 1)) for k in regular) and not depthwise:
    return "inception_resnet_v2", None, "Inception-ResNet factorised 1x7 / 7x1 convolutions"
  if stem is not None and stem.shape[:2] == (7, 7) and not depthwise:
    name = _RESNET_CONVS.get(len(regular))
    evidence = f"7x7 stem with {stem.shape[3]} filters, {len(regular)} convolutions"
    return name or "resnet", None, evidence
  if stem is not None and stem.shape[:2] == (3, 3) and depthwise:
    multiplier = stem.shape[3] / 32
    if len(depthwise) == 13:
      return "mobilenet_v1", multiplier, "3x3 stem, 13 depthwise convolutions (MobileNet V1)"
    if len(depthwise) == 17:
      return "mobilenet_v2", multiplier, "3x3 stem, 17 inverted residual blocks (MobileNet V2)"
    return "mobilenet", multiplier, f"3x3 stem, {len(depthwise)} depthwise convolutions"
  return None, None, ""


def _neck(paths: list[str], neck_vars: list[inventory.Variable]) -> str | None:
  joined = "\n".join(paths)
  if "bifpn" in joined.lower():
    return "bifpn"
  fpn = [v for v in neck_vars if "fpn" in v.path.lower()]
  if fpn:
    if any(v.path.endswith("depthwise_kernel") for v in fpn):
      return "fpnlite"
    return "fpn"
  if neck_vars:
    return "ssd_feature_maps"
  return None


def _has_lateral_convs(neck_vars: list[inventory.Variable]) -> bool:
  """CenterNet's ResNet-v1 FPN joins intermediate ResNet stages through 1x1
  convolutions; its plain ResNet upsamples the last stage only (3x3 in)."""
  return any(k.shape[:2] == (1, 1) and k.shape[2] in (512, 1024) for k in _kernels(neck_vars))


def _types(meta: str | None, backbone: str | None, neck: str | None) -> tuple[str, ...]:
  if meta is None or backbone is None:
    return ()
  if meta == SSD:
    if backbone.startswith("efficientnet-"):
      return (f"ssd_{backbone}_bifpn_keras",)
    if backbone in ("mobilenet_v1", "mobilenet_v2"):
      if neck in ("fpn", "fpnlite"):
        return (f"ssd_{backbone}_fpn_keras",)
      return (f"ssd_{backbone}_keras",)
    if backbone.startswith("resnet"):
      return (f"ssd_{backbone}_v1_fpn_keras",)
  if meta == FASTER_RCNN:
    if backbone.startswith("resnet"):
      if neck in ("fpn", "fpnlite"):
        return (f"faster_rcnn_{backbone}_fpn_keras",)
      return (f"faster_rcnn_{backbone}_keras",)
    if backbone == "inception_resnet_v2":
      return ("faster_rcnn_inception_resnet_v2_keras",)
  if meta == CENTER_NET:
    if backbone == "hourglass":
      return ("hourglass_104", "hourglass_52", "hourglass_10", "hourglass_20", "hourglass_32")
    if backbone.startswith("resnet") and backbone != "resnet":
      depth = backbone[len("resnet") :]
      if neck in ("fpn", "fpnlite"):
        return (f"resnet_v1_{depth}_fpn",)
      # v1 and v2 differ in where batch norm sits, not in names or shapes.
      return (f"resnet_v2_{depth}", f"resnet_v1_{depth}")
    if backbone.startswith("mobilenet_v2"):
      return ("mobilenet_v2_fpn", "mobilenet_v2_fpn_sep_conv") if neck else ("mobilenet_v2",)
  return ()


def _last_bias(variables, fragment: str) -> int | None:
  """Width of the last prediction layer's bias under paths containing fragment."""
  biases = [
    v for v in variables if fragment in v.path and v.path.endswith("bias") and len(v.shape) == 1
  ]
  if not biases:
    return None
  return biases[-1].shape[0]


def _heads(
  meta: str | None, model_vars: list[inventory.Variable]
) -> tuple[int | None, int | None, str]:
  """(class slots, box outputs per location, evidence) from the heads' shapes."""
  if meta == SSD:
    pairs = []
    for v in model_vars:
      m = re.search(
        r"_prediction_heads/class_predictions_with_background/(.*/)?(\d+/)?bias$"
        r"|(_class_predictor_layers/\d+)/bias$",
        v.path,
      )
      if m and len(v.shape) == 1 and "_base_tower" not in v.path:
        box_path = (
          v.path.replace("class_predictions_with_background", "box_encodings")
          .replace("_class_predictor_layers", "_box_encoder_layers")
          .replace(
            "_prediction_heads/box_encodings/_box_encoder_layers",
            "_box_prediction_head/_box_encoder_layers",
          )
        )
        pairs.append((v, box_path))
    by_path = {v.path: v for v in model_vars}
    for cls, box_path in pairs:
      box = by_path.get(box_path)
      if box is not None and box.shape[0] % 4 == 0 and box.shape[0]:
        anchors = box.shape[0] // 4
        if cls.shape[0] % anchors == 0:
          return (
            cls.shape[0] // anchors,
            box.shape[0],
            f"class head {cls.shape[0]} outputs / {anchors} anchors per location "
            f"(box head {box.shape[0]} = {anchors} x 4)",
          )
    return None, None, ""
  if meta == FASTER_RCNN:
    slots = _last_bias(model_vars, "_mask_rcnn_box_predictor/_class_prediction_head")
    if slots:
      return slots, None, f"second-stage class head {slots} outputs"
    return None, None, ""
  if meta == CENTER_NET:
    centers = [
      v
      for v in model_vars
      if (
        "_prediction_head_dict/center" in v.path or "_prediction_head_dict/object_center" in v.path
      )
      and v.path.endswith("bias")
      and len(v.shape) == 1
    ]
    if centers:
      slots = centers[-1].shape[0]
      return slots, None, f"center heatmap head {slots} channels"
  return None, None, ""


def fingerprint(inv: inventory.Inventory) -> Fingerprint:
  """Fingerprints a checkpoint from its inventory (names and shapes only)."""
  roots = _root_objects(inv)
  kind = _kind(inv, roots)
  model_vars = list(inv.of_kind(inventory.MODEL))
  if kind == WEIGHTLESS:
    return Fingerprint(
      checkpoint_kind=kind,
      root_objects=roots,
      evidence=(f"no model values: only {', '.join(v.path for v in inv.variables) or 'nothing'}",),
    )
  paths = [v.path for v in model_vars]
  evidence = []
  meta, why = _meta_architecture(paths)
  if why:
    evidence.append(why)
  # Faster R-CNN FPN's extra coarse levels sit beside the backbone's layers but
  # belong to the FPN: counted with the backbone they make ResNet-50 unknown.
  coarse = [v for v in model_vars if "coarse_feature_layers" in v.path]
  backbone_vars = [v for v in model_vars if v.component == components.BACKBONE and v not in coarse]
  backbone, multiplier, why = _backbone(backbone_vars, "\n".join(v.path for v in backbone_vars))
  if why:
    evidence.append(why)
  neck_vars = [v for v in model_vars if v.component == components.NECK] + coarse
  neck = _neck(paths, neck_vars)
  if meta == CENTER_NET and neck == "ssd_feature_maps" and _has_lateral_convs(neck_vars):
    neck = "fpn"
    evidence.append("1x1 lateral convolutions from the backbone's 512/1024-channel stages (FPN)")
  if kind == CLASSIFICATION:
    meta = None
  slots, box, why = _heads(meta, model_vars)
  if why:
    evidence.append(why)
  return Fingerprint(
    checkpoint_kind=kind,
    root_objects=roots,
    meta_architecture=meta,
    backbone=backbone,
    neck=neck,
    feature_extractor_types=_types(meta, backbone, neck),
    class_slots=slots,
    box_outputs_per_location=box,
    depth_multiplier=multiplier if backbone and backbone.startswith("mobilenet") else None,
    evidence=tuple(evidence),
  )
