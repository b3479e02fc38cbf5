"""Histogram equalisation and CLAHE against OpenCV; colour quantisation against scikit-learn's KMeans."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from sklearn.cluster import KMeans

from zrenie.errors import ShapeError
from zrenie.imgproc import color, histogram

from ._photos import to_numpy, to_tensor

BYTE = 1 / 255


def gray(photo: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY)


def test_histogram_matches_numpy(photo):
    counts = histogram.image_histogram(to_tensor(photo))  # (3, 256)
    for c in range(3):
        assert np.array_equal(counts[c].numpy(), np.bincount(photo[..., c].ravel(), minlength=256))


@pytest.mark.parametrize("backend", ["torch", "auto"])
def test_equalize_hist_matches_opencv_exactly(photo, backend):
    ours = to_numpy(histogram.equalize_hist(to_tensor(gray(photo)), backend=backend))
    assert np.array_equal(ours, cv2.equalizeHist(gray(photo)).astype(np.float32) / 255)


def test_equalize_hist_per_channel_matches_opencv(photo):
    ours = to_numpy(histogram.equalize_hist(to_tensor(photo)))
    ref = np.stack([cv2.equalizeHist(np.ascontiguousarray(photo[..., c])) for c in range(3)], -1)
    assert np.abs(ours * 255 - ref).max() <= 1e-3


def test_equalize_hist_luminance_matches_opencv_recipe(photo):
    ycrcb = cv2.cvtColor(photo.astype(np.float32) / 255, cv2.COLOR_RGB2YCrCb)
    ycrcb[..., 0] = cv2.equalizeHist(np.round(ycrcb[..., 0] * 255).astype(np.uint8)) / 255
    ref = np.clip(cv2.cvtColor(ycrcb, cv2.COLOR_YCrCb2RGB), 0, 1)
    ours = to_numpy(histogram.equalize_hist(to_tensor(photo), mode="luminance"))
    # A luma right at a level boundary can round the other way, and one level of Y can move
    # several output levels: compare the share of pixels.
    assert (np.abs(ours - ref) <= BYTE).mean() >= 0.999


def test_equalize_flat_image_keeps_its_level():
    image = torch.full((1, 8, 8), 100 / 255)
    assert torch.allclose(histogram.equalize_hist(image), image)


@pytest.mark.parametrize("clip_limit, grid", [(40.0, 8), (2.0, 8), (3.0, (5, 7)), (0.0, 4)])
def test_clahe_matches_opencv(photo, clip_limit, grid):
    gy, gx = (grid, grid) if isinstance(grid, int) else grid
    ref = cv2.createCLAHE(clip_limit, (gx, gy)).apply(gray(photo))
    for backend in ("torch", "auto"):  # both round to 8 bits as OpenCV does: equal to the last bit
        ours = to_numpy(histogram.clahe(to_tensor(gray(photo)), clip_limit, grid, backend=backend))
        assert np.array_equal(ours, ref.astype(np.float32) / 255)


def test_clahe_on_luminance_keeps_chroma(small):
    image = to_tensor(small)
    out = histogram.clahe(image, 2.0, 4, mode="luminance")
    chroma = color.rgb_to_ycbcr(out)[1:] - color.rgb_to_ycbcr(image)[1:]
    inside = ((out > 0) & (out < 1)).all(0)  # clamping to [0, 1] is the only thing that moves chroma
    assert inside.float().mean() > 0.5
    assert chroma[:, inside].abs().max() <= 1e-5


def test_clahe_batch_equals_single_images(small):
    image = to_tensor(small)
    batch = torch.stack([image, image.flip(-1)])
    out = histogram.clahe(batch, 2.0, 4)
    assert torch.allclose(out[1], histogram.clahe(image.flip(-1), 2.0, 4))


def test_quantize_colors_is_as_good_as_sklearn_kmeans(small):
    image = to_tensor(small)
    pixels = image.flatten(1).T.numpy()  # (N, 3)
    ours = histogram.quantize_colors(image, colors=8, iterations=30)
    palette = np.unique(ours.flatten(1).T.numpy(), axis=0)
    assert len(palette) <= 8
    inertia = ((ours.flatten(1).T.numpy() - pixels) ** 2).sum()
    reference = KMeans(n_clusters=8, n_init=1, random_state=0).fit(pixels).inertia_
    assert inertia <= 1.1 * reference


def test_quantize_colors_is_reproducible_and_batched(small):
    image = to_tensor(small)
    first = histogram.quantize_colors(image, colors=4, seed=3)
    assert torch.equal(first, histogram.quantize_colors(image, colors=4, seed=3))
    assert histogram.quantize_colors(torch.stack([image, image]), colors=4).shape == (2, *image.shape)


def test_bad_arguments():
    with pytest.raises(ShapeError, match="luminance"):
        histogram.equalize_hist(torch.rand(2, 8, 8), mode="luminance")
    with pytest.raises(ShapeError, match="grid"):
        histogram.clahe(torch.rand(1, 4, 4), grid=0)
    with pytest.raises(ShapeError, match="float"):
        histogram.clahe(torch.zeros(1, 16, 16, dtype=torch.uint8))
