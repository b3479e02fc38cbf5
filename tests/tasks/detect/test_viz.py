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
