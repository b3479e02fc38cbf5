"""The detection report's sections: AP per class and the test images, written into the run folder."""

import torch
from PIL import Image

from zrenie.tasks.detect.predict import DRAW_MIN_SIDE, draw_boxes
from zrenie.tasks.detect.viz import AP_PNG, EXAMPLES_PNG, detection_sections


def test_sections_write_the_bar_chart_and_the_image_pairs(tmp_path):
    image = torch.rand(3, 32, 32)
    truth = {"boxes": torch.tensor([[2.0, 3, 20, 30]]), "labels": torch.tensor([1])}
    found = {"boxes": torch.tensor([[2.0, 4, 19, 30]]), "scores": torch.tensor([0.8]), "labels": torch.tensor([1])}
    tested = {"per_class": {"a": 0.5, "b": -1.0}, "examples": [(image, truth, found)] * 2}
    sections = detection_sections(tmp_path, tested, ["a", "b"])
    assert [s.images for s in sections] == [[AP_PNG], [EXAMPLES_PNG]]
    assert sections[0].table == [{"class": "a", "AP": 0.5}, {"class": "b", "AP": -1.0}]
    assert Image.open(tmp_path / AP_PNG).size[0] > 0 and Image.open(tmp_path / EXAMPLES_PNG).size[0] > 0


def test_small_images_are_enlarged_by_a_whole_factor_before_drawing():
    image = torch.zeros(1, 20, 30)
    drawn = draw_boxes(image, torch.tensor([[1.0, 1, 5, 5]]), torch.tensor([0]), ["x"], colour=(255, 0, 0))
    factor = -(-DRAW_MIN_SIDE // 20)
    assert drawn.shape == (3, 20 * factor, 30 * factor)
    assert drawn[0, factor, factor:5 * factor].eq(255).all()  # the box's top edge, scaled with the image


def test_instance_masks_are_tinted_and_written_as_coco_rle(tmp_path):
    import json
    import warnings

    import numpy as np
    from pycocotools import mask as mask_utils

    from zrenie.tasks.detect.predict import DetectionResult, write_coco_results

    image = torch.zeros(3, 100, 120)
    masks = torch.zeros(2, 100, 120, dtype=torch.bool)
    masks[0, 10:40, 20:60] = True
    masks[1, 50:90, 70:110] = True
    boxes = torch.tensor([[20.0, 10, 60, 40], [70, 50, 110, 90]])
    result = DetectionResult("a.png", boxes, torch.tensor([0.9, 0.8]), torch.tensor([0, 1]), ["p", "q"], image, masks)
    picture = result.picture()
    f = picture.shape[0] // 100  # small images are drawn enlarged
    assert picture[25 * f, 40 * f].any() and picture[70 * f, 90 * f].any() and not picture[95 * f, 5 * f].any()
    path = write_coco_results([result], tmp_path)
    segms = [d["segmentation"] for d in json.loads(path.read_text())]
    with warnings.catch_warnings():  # pycocotools trips NumPy 2's notice about __array__(copy=)
        warnings.simplefilter("ignore", DeprecationWarning)
        decoded = mask_utils.decode([{"size": s["size"], "counts": s["counts"].encode()} for s in segms])
    assert np.array_equal(decoded.transpose(2, 0, 1).astype(bool), masks.numpy())
