"""torchvision's detectors under the detector protocol, checked against torchvision's own builders and models.

Images are 32x32 and the R-CNNs keep few proposals, so a forward pass is cheap; the parity of FCOS (the
same path as RetinaNet) and SSD300 (300x300 input) runs under `-m slow`.
"""

import copy
import pickle

import pytest
import torch
from torch import nn
from torchvision import tv_tensors
from torchvision.models import detection
from torchvision.models.detection.backbone_utils import resnet_fpn_backbone
from torchvision.models.detection.faster_rcnn import FasterRCNN
from torchvision.models.detection.roi_heads import RoIHeads
from torchvision.models.detection.transform import GeneralizedRCNNTransform
from torchvision.ops.misc import FrozenBatchNorm2d as TorchvisionFrozenBN

from torch_helpers import randomize_batchnorm
from zrenie.errors import CheckpointError, ConfigError
from zrenie.models import build_model
from zrenie.nn.transfer import FrozenBatchNorm2d
from zrenie.tasks.detect.models_torchvision import SPECS, load_torchvision_weights

K = 3  # zrenie classes
SIZE = 32
SMALL_RCNN = {"rpn_pre_nms_top_n_test": 200, "rpn_post_nms_top_n_test": 30, "rpn_pre_nms_top_n_train": 200,
              "rpn_post_nms_top_n_train": 30, "box_batch_size_per_image": 16}
# torchvision's loss names (its docs), the independent reference for `losses`' parts.
LOSS_PARTS = {
    "fasterrcnn_resnet50_fpn": {"loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg"},
    "maskrcnn_resnet50_fpn": {"loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg", "loss_mask"},
    "retinanet_resnet50_fpn": {"classification", "bbox_regression"},
    "fcos_resnet50_fpn": {"classification", "bbox_regression", "bbox_ctrness"},
    "ssd300_vgg16": {"classification", "bbox_regression"},
}
BACKGROUND = {"fasterrcnn_resnet50_fpn": 1, "maskrcnn_resnet50_fpn": 1, "ssd300_vgg16": 1,
              "retinanet_resnet50_fpn": 0, "fcos_resnet50_fpn": 0}
SLOW = pytest.mark.slow


@pytest.fixture(autouse=True)
def one_thread():
    """A 32x32 forward pass is too small to share between threads: on a busy 2-core machine the hand-offs
    made these tests 20x slower (a ResNet-50-FPN forward: 0.04 s on 1 thread, 2 s on 2)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def small_kwargs(name: str) -> dict:
    return dict(SMALL_RCNN) if "rcnn" in name else {}


def batch(size: int = SIZE, masks: bool = False) -> tuple[torch.Tensor, list[dict]]:
    """Two images, the first with two boxes, the second with none; boxes and masks as zrenie's samples hold them."""
    g = torch.Generator().manual_seed(0)
    images = torch.rand(2, 3, size, size, generator=g)
    s = size / 32
    boxes = torch.tensor([[2.0, 3.0, 20.0, 24.0], [10.0, 8.0, 30.0, 30.0]]) * s
    first = {"boxes": tv_tensors.BoundingBoxes(boxes, format="XYXY", canvas_size=(size, size)),
             "labels": torch.tensor([0, K - 1])}
    second = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}
    if masks:
        m = torch.zeros(2, size, size, dtype=torch.uint8)
        for i, (x1, y1, x2, y2) in enumerate(boxes.int().tolist()):
            m[i, y1:y2, x1:x2] = 1
        first["masks"], second["masks"] = tv_tensors.Mask(m), torch.zeros(0, size, size, dtype=torch.uint8)
    return images, [first, second]


def as_torchvision(name: str, model: nn.Module, size: int) -> nn.Module:
    """A copy of `model` as torchvision's own classes (building torchvision's model again costs seconds):
    torchvision's forward, postprocessing and input transform, resizing to `size` (a no-op on these images)."""
    ref = copy.deepcopy(model)
    ref.__class__ = type(model).__mro__[2]  # (ours, TorchvisionDetector, torchvision's class, ...)
    assert ref.__class__.__module__.startswith("torchvision.")
    ref.transform.__class__ = GeneralizedRCNNTransform
    if name != "ssd300_vgg16":
        ref.transform.min_size, ref.transform.max_size = (size,), size
    if hasattr(ref, "roi_heads"):
        ref.roi_heads.__class__ = RoIHeads
    return ref.eval()


def set_thresholds(ref: nn.Module, conf: float, iou: float, max_det: int) -> None:
    owner = getattr(ref, "roi_heads", ref)
    owner.score_thresh, owner.nms_thresh, owner.detections_per_img = conf, iou, max_det


def assert_same(ours: dict, theirs: dict, offset: int) -> None:
    assert torch.equal(ours["labels"] + offset, theirs["labels"])
    torch.testing.assert_close(ours["boxes"], theirs["boxes"])
    torch.testing.assert_close(ours["scores"], theirs["scores"])


@pytest.mark.parametrize("name", list(SPECS))
def test_parameters_and_keys_equal_torchvisions(name):
    with torch.device("meta"):  # shapes only: no init cost
        ours = build_model(name, num_classes=K)
        builder = getattr(detection, SPECS[name].builder)
        theirs = builder(weights=None, weights_backbone=None, num_classes=K + BACKGROUND[name])
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in theirs.parameters())
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in theirs.state_dict().items()}
    assert type(pickle.loads(pickle.dumps(ours.transform))) is type(ours.transform)  # composed classes pickle


@pytest.mark.parametrize("name", [
    "fasterrcnn_resnet50_fpn", "retinanet_resnet50_fpn", pytest.param("fcos_resnet50_fpn", marks=SLOW),
    "maskrcnn_resnet50_fpn", pytest.param("ssd300_vgg16", marks=SLOW)])
def test_losses_and_detect_match_torchvision(name):
    torch.manual_seed(0)
    size = 300 if name == "ssd300_vgg16" else SIZE
    model = randomize_batchnorm(build_model(name, num_classes=K, **small_kwargs(name)))
    images, targets = batch(size, masks=name.startswith("mask"))
    with torch.no_grad():
        parts = model.losses(images, targets)
    assert set(parts) == LOSS_PARTS[name] | {"loss"}
    assert all(torch.isfinite(v) for v in parts.values())
    torch.testing.assert_close(parts["loss"], sum(v for k, v in parts.items() if k != "loss"))

    conf, iou, max_det = (0.002 if BACKGROUND[name] == 0 else 0.05), 0.5, 10
    ref = as_torchvision(name, model, size)
    set_thresholds(ref, conf, iou, max_det)
    with torch.no_grad():
        expected = ref(list(images))
        dets = model.detect(images, conf, iou, max_det)
        model.nms = "zrenie"
        dets_zrenie = model.detect(images, conf, iou, max_det)
    assert len(dets) == 2 and len(dets[0]["scores"]) > 0
    for ours, mine, theirs in zip(dets, dets_zrenie, expected):
        assert len(ours["scores"]) <= max_det and bool((ours["scores"] >= conf).all())
        assert bool((ours["scores"][:-1] >= ours["scores"][1:]).all())
        assert bool((ours["labels"] >= 0).all() and (ours["labels"] < K).all())
        assert_same(ours, theirs, BACKGROUND[name])
        assert_same(mine, theirs, BACKGROUND[name])
        if "masks" in theirs:
            assert ours["masks"].shape == (len(ours["scores"]), size, size) and ours["masks"].dtype == torch.float32
            torch.testing.assert_close(ours["masks"], theirs["masks"][:, 0])


def test_eval_mode_losses_keep_modes_and_statistics_and_follow_grad_mode():
    model = randomize_batchnorm(build_model("retinanet_resnet50_fpn", num_classes=K)).eval()
    stats = {k: v.clone() for k, v in model.state_dict().items() if "running" in k or "tracked" in k}
    images, targets = batch()
    parts = model.losses(images, targets)
    assert set(parts) == LOSS_PARTS["retinanet_resnet50_fpn"] | {"loss"} and torch.isfinite(parts["loss"])
    assert parts["loss"].requires_grad
    assert not any(m.training for m in model.modules())
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in stats.items())


def test_bad_options_are_one_line_errors():
    with torch.device("meta"):
        with pytest.raises(ConfigError, match="in_channels=1"):
            build_model("fcos_resnet50_fpn", num_classes=K, in_channels=1)
        with pytest.raises(ConfigError, match="not an option"):
            build_model("retinanet_resnet50_fpn", num_classes=K, colour="red")
        with pytest.raises(ConfigError, match="model.weights"):
            build_model("retinanet_resnet50_fpn", num_classes=K, weights="DEFAULT")
        with pytest.raises(ConfigError, match="unknown backend"):
            build_model("retinanet_resnet50_fpn", num_classes=K).nms = "fast"
        model = build_model("maskrcnn_resnet50_fpn", num_classes=K)
    images, targets = batch()
    with pytest.raises(ConfigError, match="needs instance masks"):
        model.losses(images.to("meta"), targets)


def coco_layout_fasterrcnn(num_classes: int) -> nn.Module:
    """Faster R-CNN as torchvision's COCO file holds it: frozen batchnorm, so no num_batches_tracked keys.
    (torchvision evaluates that file with eps 0, a model setting no file records; both sides keep 1e-5 here.)"""
    torch.manual_seed(1)
    backbone = resnet_fpn_backbone(backbone_name="resnet50", weights=None, norm_layer=TorchvisionFrozenBN,
                                   trainable_layers=3)
    model = FasterRCNN(backbone, num_classes=num_classes, min_size=SIZE, max_size=SIZE, **SMALL_RCNN)
    for m in model.modules():
        if isinstance(m, TorchvisionFrozenBN):
            m.weight.uniform_(0.5, 1.5), m.bias.normal_(0, 0.1), m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    return model.eval()


def uninitialised(name: str, num_classes: int, **kwargs) -> nn.Module:
    """A detector of zeros, without the random init's cost (a weight file fills it). Its anchors stay on
    the meta device: fine for loading and for the backbone, not for a whole forward pass."""
    with torch.device("meta"):
        model = build_model(name, num_classes=num_classes, **kwargs)
    model.to_empty(device="cpu")
    for t in model.state_dict().values():
        t.zero_()
    return model


def test_torchvision_weight_file_loads_with_any_class_count_and_refuses_other_models(tmp_path):
    theirs = coco_layout_fasterrcnn(K + 1)
    path = tmp_path / "fasterrcnn_resnet50_fpn_coco.pth"
    torch.save(theirs.state_dict(), path)
    assert not any(k.endswith("num_batches_tracked") for k in theirs.state_dict())

    model = uninitialised("fasterrcnn_resnet50_fpn", K, frozen_batchnorm=True)
    assert model.load_weights(path) == []
    frozen = [m for m in model.backbone.modules() if isinstance(m, nn.BatchNorm2d)]
    assert frozen and all(type(m) is FrozenBatchNorm2d and not m.weight.requires_grad for m in frozen)
    assert not any(m.training for m in model.train().backbone.modules() if isinstance(m, nn.BatchNorm2d))
    images, _ = batch()
    with torch.no_grad():
        x = theirs.transform.normalize(images)  # (B, 3, H, W)
        ours, expected = model.eval().backbone(x), theirs.backbone(x)
    for level in expected:
        torch.testing.assert_close(ours[level], expected[level], rtol=1e-3, atol=1e-3)  # BN as one affine vs two steps

    other = uninitialised("fasterrcnn_resnet50_fpn", K + 2)
    predictor = {k: v.clone() for k, v in other.state_dict().items() if "box_predictor" in k}
    with pytest.warns(UserWarning, match="another number of classes.*cls_score"):
        skipped = load_torchvision_weights(other, path)
    assert sorted(skipped) == sorted(f"roi_heads.box_predictor.{layer}.{p}" for layer in ("cls_score", "bbox_pred")
                                     for p in ("weight", "bias"))
    file = theirs.state_dict()
    assert all(torch.equal(v, file[k]) for k, v in other.state_dict().items() if k in file and k not in skipped)
    assert all(torch.equal(v, other.state_dict()[k]) for k, v in predictor.items())

    with torch.device("meta"):
        retinanet = build_model("retinanet_resnet50_fpn", num_classes=K)
    with pytest.raises(CheckpointError, match=r"fasterrcnn_resnet50_fpn_coco\.pth: not a retinanet_resnet50_fpn "
                                              r"state_dict \(shape of backbone\.fpn\..*missing .*unexpected "):
        load_torchvision_weights(retinanet, path)
    with pytest.raises(CheckpointError, match="not found"):
        load_torchvision_weights(model, tmp_path / "missing.pth")
    with pytest.raises(ConfigError, match="torchvision detector"):
        load_torchvision_weights(nn.Linear(2, 2), path)
