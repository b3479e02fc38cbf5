"""Morphology against OpenCV's erode, dilate and morphologyEx on the bundled photos."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from zrenie.errors import ShapeError
from zrenie.imgproc import morphology

from ._photos import to_numpy, to_tensor

CV_SHAPES = {"rect": cv2.MORPH_RECT, "ellipse": cv2.MORPH_ELLIPSE, "cross": cv2.MORPH_CROSS}
OPS = {
    "erode": (morphology.erode, lambda img, k: cv2.erode(img, k)),
    "dilate": (morphology.dilate, lambda img, k: cv2.dilate(img, k)),
    "opening": (morphology.opening, lambda img, k: cv2.morphologyEx(img, cv2.MORPH_OPEN, k)),
    "closing": (morphology.closing, lambda img, k: cv2.morphologyEx(img, cv2.MORPH_CLOSE, k)),
    "gradient": (morphology.morphological_gradient, lambda img, k: cv2.morphologyEx(img, cv2.MORPH_GRADIENT, k)),
    "top_hat": (morphology.top_hat, lambda img, k: cv2.morphologyEx(img, cv2.MORPH_TOPHAT, k)),
    "black_hat": (morphology.black_hat, lambda img, k: cv2.morphologyEx(img, cv2.MORPH_BLACKHAT, k)),
}


@pytest.mark.parametrize("shape", CV_SHAPES)
@pytest.mark.parametrize("size", [3, 5, (4, 7)])
def test_structuring_element_matches_opencv(shape, size):
    kh, kw = (size, size) if isinstance(size, int) else size
    ref = cv2.getStructuringElement(CV_SHAPES[shape], (kw, kh))
    assert np.array_equal(morphology.structuring_element(shape, size).numpy(), ref)


@pytest.mark.parametrize("name", OPS)
@pytest.mark.parametrize("shape, size", [("rect", 5), ("ellipse", 7), ("cross", (3, 6))])
def test_ops_match_opencv(small, name, shape, size):
    ours_fn, ref_fn = OPS[name]
    element = morphology.structuring_element(shape, size)
    ref = ref_fn(small.astype(np.float32) / 255, element.numpy().astype(np.uint8))
    for backend in ("torch", "auto"):
        assert np.array_equal(to_numpy(ours_fn(to_tensor(small), element, backend=backend)), ref)


@pytest.mark.parametrize("border, cv_border", [("replicate", cv2.BORDER_REPLICATE), ("constant", cv2.BORDER_CONSTANT),
                                               ("reflect", cv2.BORDER_REFLECT_101)])
def test_borders_match_opencv(small, border, cv_border):
    image = small.astype(np.float32) / 255
    element = morphology.structuring_element("ellipse", 5)
    ref = cv2.erode(image, element.numpy().astype(np.uint8), borderType=cv_border, borderValue=0)
    for backend in ("torch", "auto"):
        assert np.array_equal(to_numpy(morphology.erode(to_tensor(image), element, border, backend=backend)), ref)


def test_rect_size_shorthand_equals_element():
    image = torch.rand(2, 3, 20, 30)
    assert torch.equal(morphology.dilate(image, (3, 5)), morphology.dilate(image, torch.ones(3, 5)))


@pytest.mark.parametrize("op", [morphology.erode, morphology.dilate, morphology.morphological_gradient])
@pytest.mark.parametrize("kernel", [3, morphology.structuring_element("cross", 3)])
def test_gradcheck(op, kernel):
    image = torch.rand(1, 2, 6, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    assert torch.autograd.gradcheck(lambda x: op(x, kernel), (image.requires_grad_(),))


def test_bad_arguments():
    with pytest.raises(ShapeError, match="shape"):
        morphology.structuring_element("disk", 3)
    with pytest.raises(ShapeError, match="iterations"):
        morphology.erode(torch.rand(1, 4, 4), 5, iterations=-1)
    with pytest.raises(ShapeError, match="border"):
        morphology.erode(torch.rand(1, 4, 4), 5, border="wrap")
    with pytest.raises(ShapeError, match="nonzero"):
        morphology.dilate(torch.rand(1, 8, 8), torch.zeros(3, 3))


def test_shape_argument_draws_the_element():
    image = torch.rand(1, 3, 20, 20)
    element = morphology.structuring_element("ellipse", 5)
    assert torch.equal(morphology.closing(image, 5, shape="ellipse"), morphology.closing(image, element))


def test_cache_blocks_give_the_whole_image_result():
    image = torch.rand(3, 2, 300, 500, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    for kernel in (5, morphology.structuring_element("ellipse", 7)):
        fast = morphology.closing(image, kernel, backend="torch")
        graph = morphology.closing(image.clone().requires_grad_(), kernel).detach()  # autograd: no blocks
        assert torch.equal(fast, graph)
