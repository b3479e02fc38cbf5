"""Detection ops on `(N, 4)` boxes: conversions, IoU family, NMS (torchvision's names and signatures), anchors
and default boxes, and selective search region proposals."""

from zrenie.ops.anchors import default_boxes, grid_anchors, num_anchors_per_location, num_default_boxes, ssd_scales
from zrenie.ops.boxes import (
    BOX_FORMATS, SOFT_NMS_METHODS, batched_nms, box_area, box_convert, box_iou, complete_box_iou, denormalize_boxes,
    distance_box_iou, generalized_box_iou, nms, normalize_boxes, soft_nms,
)
from zrenie.ops.knn import knn_search
from zrenie.ops.selective_search import selective_search

__all__ = [
    "BOX_FORMATS", "SOFT_NMS_METHODS", "batched_nms", "box_area", "box_convert", "box_iou", "complete_box_iou",
    "default_boxes", "denormalize_boxes", "distance_box_iou", "generalized_box_iou", "grid_anchors", "nms",
    "normalize_boxes", "num_anchors_per_location", "num_default_boxes", "selective_search", "soft_nms", "ssd_scales",
    "knn_search",
]
