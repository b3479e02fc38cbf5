"""`zrenie detect`: short runs on the built-in data through the API and the CLI."""

import json

import pytest
import torch
from PIL import Image

import zrenie
from zrenie.cli import main
from zrenie.data.builtin.shapes import shape_scenes
from zrenie.tasks.detect.predict import DetectionResult, coco_results

TINY = {"epochs": 1, "progress": False, "tensorboard": False, "report": False, "seed": 0,
        "data.num_samples": 40, "data.size": 32, "data.batch_size": 8, "model.width": 4,
        "model.kwargs": {"head_channels": 8}}
CONTRACT = ["ap", "ap50", "ap75", "ap_small", "ap_medium", "ap_large", "ar100"]


@pytest.fixture(scope="module")
def shapes_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("det") / "shapes"
    return zrenie.train("detect", out=str(out), **TINY)


def test_metrics_are_the_contract_names_and_reproduce_from_the_checkpoint(shapes_run):
    test = shapes_run["test"]
    assert set(CONTRACT) <= set(test)
    again = zrenie.evaluate(shapes_run["run_dir"] / "best.pt", split="test")["metrics"]
    assert again["ap50"] == pytest.approx(test["ap50"], abs=1e-9)


def test_eval_prints_one_line_per_metric_and_writes_json(shapes_run, tmp_path, capsys):
    out = tmp_path / "m.json"
    assert main(["detect", "eval", str(shapes_run["run_dir"]), "--json", str(out)]) == 0
    lines = dict(line.split(None, 1) for line in capsys.readouterr().out.splitlines() if line.strip())
    assert set(CONTRACT) <= set(lines)
    assert json.loads(out.read_text())["ap"] == pytest.approx(float(lines["ap"]), abs=1e-4)


def test_predict_scales_boxes_to_the_input_and_writes_pictures_and_coco_results(shapes_run, tmp_path):
    image = torch.rand(3, 48, 80)
    (result,) = zrenie.predict(shapes_run["run_dir"], [image], conf=0.0, max_det=5)
    assert len(result.boxes) <= 5 and (result.scores[:-1] >= result.scores[1:]).all()
    assert (result.boxes[:, 2] <= 80 + 1e-4).all() and (result.boxes[:, 3] <= 48 + 1e-4).all()
    path = tmp_path / "scene.png"
    Image.fromarray(shape_scenes(1, 32, seed=3)[0].image.transpose(1, 2, 0)).save(path)
    (expected,) = zrenie.predict(shapes_run["run_dir"], [path], conf=0.0, max_det=3)
    out = tmp_path / "pred"
    assert main(["detect", "predict", str(shapes_run["run_dir"]), str(path), "conf=0.0", "max_det=3",
                 "--out", str(out)]) == 0
    assert (out / "scene_boxes.png").is_file()
    results = json.loads((out / "detections.json").read_text())
    assert [r["bbox"] for r in results] == pytest.approx(
        [[b[0], b[1], b[2] - b[0], b[3] - b[1]] for b in expected.boxes.tolist()], abs=0.01)
    images = json.loads((out / "detections_images.json").read_text())["images"]
    assert images == [{"id": 1, "file_name": str(path), "height": 32, "width": 32}]


def test_coco_results_of_hand_made_predictions():
    one = DetectionResult("a.png", torch.tensor([[1.0, 2, 11, 22]]), torch.tensor([0.9]), torch.tensor([2]),
                          ["x", "y", "z"], torch.zeros(3, 30, 40))
    none = DetectionResult("b.png", torch.zeros(0, 4), torch.zeros(0), torch.zeros(0).long(), ["x", "y", "z"])
    coco = coco_results([one, none])
    assert coco["annotations"] == [{"image_id": 1, "category_id": 3, "score": 0.9, "bbox": [1.0, 2.0, 10.0, 20.0]}]
    assert coco["images"] == [{"id": 1, "file_name": "a.png", "height": 30, "width": 40},
                              {"id": 2, "file_name": "b.png"}]
    assert coco["categories"][2] == {"id": 3, "name": "z"}
    assert none.rows()[0]["class"] == "(nothing)" and one.to_dict()["detections"][0]["class"] == "z"


def test_localizer_reports_accuracy_and_mean_iou_on_digit_scenes(tmp_path):
    run = zrenie.train("detect", out=str(tmp_path / "loc"), **{**TINY, "data.name": "digit_scenes", "model.kwargs": {},
                                                               "model.name": "localizer", "data.num_samples": 60})
    assert {"acc1", "miou", "ap"} <= set(run["test"])
    assert 0 <= run["test"]["miou"] <= 1


def test_an_unknown_predict_option_is_one_config_error(shapes_run, tmp_path, capsys):
    path = tmp_path / "x.png"
    Image.new("RGB", (16, 16)).save(path)
    assert main(["detect", "predict", str(shapes_run["run_dir"]), str(path), "confidence=0.3"]) == 2
    err = capsys.readouterr().err
    assert "confidence" in err and "Traceback" not in err


def _hardhat_folder(root, n=8):
    """A flat VOC folder as the hard-hat set ships: annotations/*.xml + images/*.png, three classes."""
    (root / "annotations").mkdir(parents=True)
    (root / "images").mkdir()
    for i in range(n):
        Image.new("RGB", (40, 32), (30 * (i % 5), 90, 60)).save(root / "images" / f"hard_hat_{i}.png")
        objects = "".join(f"<object><name>{name}</name><difficult>0</difficult><bndbox><xmin>{3 + j * 12}</xmin>"
                          f"<ymin>4</ymin><xmax>{12 + j * 12}</xmax><ymax>20</ymax></bndbox></object>"
                          for j, name in enumerate(("helmet", "head", "person")))
        (root / "annotations" / f"hard_hat_{i}.xml").write_text(
            f"<annotation><filename>hard_hat_{i}.png</filename><size><width>40</width><height>32</height>"
            f"<depth>3</depth></size>{objects}</annotation>")


def test_the_project_recipe_trains_on_a_flat_voc_folder_with_two_of_three_classes(tmp_path):
    _hardhat_folder(tmp_path / "hardhat")
    overrides = {**TINY, "data.root": str(tmp_path / "hardhat"), "data.size": 32, "data.num_samples": None,
                 "model.kwargs": {"backbone": "convnet", "head_channels": 8}, "data.workers": 0}
    run = zrenie.train("detect", "project_hardhat", out=str(tmp_path / "run"), **overrides)
    from zrenie.nn.checkpoint import load_run

    assert load_run(run["run_dir"]).preprocess["classes"] == ["helmet", "head"]
    assert set(CONTRACT) <= set(run["test"])


@pytest.mark.slow
@pytest.mark.parametrize("name", ["fasterrcnn_resnet50_fpn", "retinanet_resnet50_fpn", "maskrcnn_resnet50_fpn"])
def test_torchvision_detectors_train_evaluate_and_predict_through_the_engine(name, tmp_path):
    overrides = {**TINY, "model.name": name, "model.kwargs": {}, "model.width": None, "data.size": 64,
                 "data.num_samples": 24, "data.batch_size": 4}
    run = zrenie.train("detect", out=str(tmp_path / name), **overrides)
    assert set(CONTRACT) <= set(run["test"])
    assert ("mask_ap" in run["test"]) == (name == "maskrcnn_resnet50_fpn")
    (result,) = zrenie.predict(run["run_dir"], [torch.rand(3, 50, 70)], conf=0.0, max_det=4)
    assert len(result.boxes) <= 4 and (result.boxes[:, 2] <= 70 + 1e-3).all()


def test_a_torchvision_weight_file_keeps_torchvision_input_statistics():
    from zrenie.config import build_config
    from zrenie.tasks import get_task

    meta = {"classes": ["a", "b"], "in_channels": 3, "mean": [0.5] * 3, "std": [0.2] * 3}
    task = get_task("detect")
    specs = {weights: task.model_specs(build_config(task="detect", **{"model.name": "fasterrcnn_resnet50_fpn",
                                                                      "model.weights": weights}), meta)["model"][1]
             for weights in (None, "fasterrcnn.pth")}
    assert specs[None]["mean"] == [0.5] * 3 and specs[None]["std"] == [0.2] * 3
    assert specs["fasterrcnn.pth"]["mean"] is None and specs["fasterrcnn.pth"]["std"] is None
    # without statistics the builder keeps torchvision's: SSD300's are on the 0-255 scale (torchvision's ssd.py)
    with torch.device("meta"):
        model = zrenie.build_model("ssd300_vgg16", num_classes=2, mean=None, std=None)
    assert model.transform.image_mean == [0.48235, 0.45882, 0.40784] and model.transform.image_std == [1 / 255] * 3


def test_mask_rcnn_asks_the_data_for_instance_masks_and_only_it_does():
    from zrenie.config import build_config
    from zrenie.errors import DataError
    from zrenie.tasks import get_task

    task = get_task("detect")
    small = {"data.size": 32, "data.num_samples": 20}
    cfg = build_config(task="detect", **small, **{"model.name": "maskrcnn_resnet50_fpn"})
    target = task.build_data(cfg).train.targets[0]
    assert target["masks"].shape == (len(target["boxes"]), 32, 32)
    assert "masks" not in task.build_data(build_config(task="detect", **small)).train.targets[0]  # CenterNet
    assert task.build_step(cfg, {"classes": ["a"]}).new_metric().names[-1] == "mask_ap75"
    with pytest.raises(DataError, match="not 'instances'"):
        task.build_data(build_config(task="detect", **{"model.name": "maskrcnn_resnet50_fpn", "data.name": "voc",
                                                       "data.root": "nowhere"}))


def test_mask_rcnn_batches_from_a_coco_folder_carry_masks_moved_with_their_boxes(tmp_path):
    """Target "instances" through the file loader's train transforms: each mask is resized and flipped with its
    image, and still lies inside its box (torchvision's v2 transforms and SanitizeBoundingBoxes keep them aligned)."""
    import json

    import numpy as np
    from PIL import Image
    from pycocotools import mask as mask_utils

    from zrenie.config import build_config
    from zrenie.data.builtin.shapes import SHAPE_KINDS, shape_scenes
    from zrenie.tasks import get_task

    (tmp_path / "images").mkdir()
    images, anns = [], []
    for i, scene in enumerate(shape_scenes(10, 48, 3, seed=2), 1):
        Image.fromarray(scene.image.transpose(1, 2, 0)).save(tmp_path / "images" / f"{i}.png")
        images.append({"id": i, "file_name": f"{i}.png", "width": 48, "height": 48})
        for mask, (x1, y1, x2, y2), label in zip(scene.masks, scene.boxes.tolist(), scene.labels.tolist()):
            rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
            anns.append({"id": len(anns) + 1, "image_id": i, "category_id": label + 1, "iscrowd": 0,
                         "bbox": [x1, y1, x2 - x1, y2 - y1], "segmentation": {**rle, "counts": rle["counts"].decode()}})
    (tmp_path / "ann.json").write_text(json.dumps({"images": images, "annotations": anns, "categories": [
        {"id": k + 1, "name": name} for k, name in enumerate(SHAPE_KINDS[:3])]}))
    cfg = build_config(task="detect", **{"model.name": "maskrcnn_resnet50_fpn", "data.name": "coco",
                                         "data.root": str(tmp_path / "images"), "data.ann": str(tmp_path / "ann.json"),
                                         "data.size": 64, "data.workers": 0, "data.batch_size": 6,
                                         "data.val_fraction": 0.2})
    task = get_task("detect")
    splits = task.build_data(cfg)
    batch = next(iter(task.build_loader(splits, "train", cfg, torch.device("cpu"), train=True)))
    for image, target in zip(batch["image"], batch["target"]):
        masks, boxes = target["masks"].as_subclass(torch.Tensor), target["boxes"].as_subclass(torch.Tensor)
        assert masks.shape == (len(boxes), *image.shape[-2:]) and len(boxes) == len(target["labels"])
        for mask, (x1, y1, x2, y2) in zip(masks, boxes.tolist()):
            ys, xs = mask.nonzero(as_tuple=True)
            assert len(xs) and xs.min() >= x1 - 1 and xs.max() < x2 + 1 and ys.min() >= y1 - 1 and ys.max() < y2 + 1
