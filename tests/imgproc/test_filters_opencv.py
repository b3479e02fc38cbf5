"""Filters on the inputs where zrenie and OpenCV used to part, and every backend="auto" path against cv2.

Images smaller than the kernel, sides of one pixel, rectangular medians, the Gaussian size rule,
empty batches and values outside [0, 1]; each case runs the torch code and the auto (OpenCV) path.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from zrenie.errors import ConfigError
from zrenie.imgproc import GaussianBlur, filters

BORDERS = {"reflect": cv2.BORDER_REFLECT_101, "replicate": cv2.BORDER_REPLICATE, "constant": cv2.BORDER_CONSTANT}
BACKENDS = ["torch", "auto"]
ALL_BACKENDS = ["torch", "auto", "opencv"]  # "auto" runs torch for linear filters of planes under 64x64
TOL = 1e-5
SMALL_SIZES = [(1, 1), (1, 9), (9, 1), (2, 3), (3, 2), (5, 4)]


def hwc(tensor: torch.Tensor) -> np.ndarray:
    """(C, H, W) -> (H, W, C), or (H, W) for one channel."""
    array = tensor.detach().permute(1, 2, 0).numpy()
    return array[:, :, 0] if array.shape[2] == 1 else array


def chw(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array.reshape(*array.shape[:2], -1).transpose(2, 0, 1)))


def assert_close(ours: np.ndarray, ref: np.ndarray, tol: float = TOL, scale: float = 1.0) -> None:
    """Within `tol` times the result's scale: at least `scale`, the kernel's absolute sum for a derivative
    (a 7x7 Laplacian's taps reach the hundreds, and float32 sums of them cancel to ~1e-5, not to 0)."""
    assert ours.shape == ref.shape
    assert np.abs(ours - ref).max() <= tol * max(1.0, scale, float(np.abs(ref).max()))


def kernel_abs_sum(linear_op) -> float:
    """The absolute sum of a linear filter's kernel, read from its response to an impulse."""
    impulse = np.zeros((15, 15), np.float64)
    impulse[7, 7] = 1
    return float(np.abs(linear_op(impulse)).sum())


def random_image(height: int, width: int, channels: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((height, width, channels), dtype=np.float32)


def naive_median(image: np.ndarray, kh: int, kw: int, border: str) -> np.ndarray:
    """np.median over each kh x kw window of the image padded by cv2.copyMakeBorder (anchor at the centre)."""
    padded = cv2.copyMakeBorder(image, kh // 2, kh // 2, kw // 2, kw // 2, BORDERS[border])
    padded = padded.reshape(*padded.shape[:2], -1)
    out = np.empty((image.shape[0], image.shape[1], padded.shape[2]), np.float32)
    for y in range(image.shape[0]):
        for x in range(image.shape[1]):
            out[y, x] = np.median(padded[y:y + kh, x:x + kw], axis=(0, 1))
    return out.reshape(image.shape)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("border", BORDERS)
def test_median_windows_match_a_naive_median(border, backend):
    image = random_image(7, 9, 2)
    for kh, kw in [(3, 1), (1, 3), (5, 7), (7, 3), (3, 3), (5, 5)]:  # the square ones run OpenCV on "auto"
        ours = hwc(filters.median_blur(chw(image), (kh, kw), border, backend=backend))
        assert np.array_equal(ours, naive_median(image, kh, kw, border)), (kh, kw)


@pytest.mark.parametrize("backend", BACKENDS)
def test_square_median_matches_opencv(backend):
    image = random_image(17, 23)
    for k in (3, 5):
        ours = hwc(filters.median_blur(chw(image), k, "replicate", backend=backend))
        assert np.array_equal(ours, cv2.medianBlur(image, k))


def _small_case(op: str, image: np.ndarray, k: int, border: str, backend: str) -> tuple[np.ndarray, np.ndarray]:
    """(zrenie's result, OpenCV's) of `op` with kernel size k on an HWC float32 image (a 3-tuple with the
    kernel's absolute sum for derivatives)."""
    code, x = BORDERS[border], chw(image)
    if op == "box":
        return hwc(filters.box_blur(x, k, border, backend=backend)), cv2.blur(image, (k, k), borderType=code)
    if op == "gaussian":
        return (hwc(filters.gaussian_blur(x, 1.2, k, border, backend=backend)),
                cv2.GaussianBlur(image, (k, k), 1.2, borderType=code))
    if op == "median":
        ref = cv2.medianBlur(image, k) if border == "replicate" else naive_median(image, k, k, border)
        return hwc(filters.median_blur(x, k, border, backend=backend)), ref
    if op == "bilateral":
        return (hwc(filters.bilateral_filter(x, k, 0.2, 2.0, border, backend=backend)),
                cv2.bilateralFilter(image, k, 0.2, 2.0, borderType=code))
    if op == "sobel":
        ours = filters.spatial_gradient(x, "sobel", k, border=border, backend=backend)  # (C, 2, H, W)
        refs = [cv2.Sobel(image, cv2.CV_32F, dx, dy, ksize=k, borderType=code) for dx, dy in ((1, 0), (0, 1))]
        scale = kernel_abs_sum(lambda i: cv2.Sobel(i, -1, 1, 0, ksize=k))
        return np.stack([hwc(ours[:, 0]), hwc(ours[:, 1])]), np.stack(refs), scale
    if op == "laplacian":
        return (hwc(filters.laplacian(x, k, normalized=False, border=border, backend=backend)),
                cv2.Laplacian(image, cv2.CV_32F, ksize=k, borderType=code),
                kernel_abs_sum(lambda i: cv2.Laplacian(i, -1, ksize=k)))
    kernel = np.random.default_rng(k).normal(size=(k, k)).astype(np.float32) / k
    return (hwc(filters.filter2d(x, torch.from_numpy(kernel), border, backend=backend)),
            cv2.filter2D(image, -1, kernel, borderType=code))


@pytest.mark.parametrize("backend", ALL_BACKENDS)
@pytest.mark.parametrize("border", BORDERS)
@pytest.mark.parametrize("op", ["box", "gaussian", "median", "bilateral", "sobel", "laplacian", "filter2d"])
def test_images_smaller_than_the_kernel_match_opencv(op, border, backend):
    for height, width in SMALL_SIZES:
        image = random_image(height, width, seed=height * 10 + width)
        for k in (3, 5) if op == "median" else (3, 5, 7):
            ours, ref, *scale = _small_case(op, image, k, border, backend)
            assert_close(ours, ref, scale=scale[0] if scale else 1.0)


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_one_pixel_rows_and_columns_reflect_as_opencv(backend):
    row = random_image(1, 9, seed=1)
    for image in (row, np.ascontiguousarray(row.transpose(1, 0, 2))):  # 1x9 and 9x1
        for kh, kw in [(1, 5), (5, 1), (3, 3)]:
            ours = hwc(filters.box_blur(chw(image), (kh, kw), "reflect", backend=backend))
            assert_close(ours, cv2.blur(image, (kw, kh), borderType=cv2.BORDER_REFLECT_101))  # ksize is (w, h)
            assert_close(ours, cv2.boxFilter(image, -1, (kw, kh), borderType=cv2.BORDER_REFLECT_101))


def test_pad_image_is_opencvs_border_rule_for_any_size():
    for size in range(1, 7):
        image = torch.arange(float(size)).view(1, 1, 1, size)
        for border in BORDERS:
            padded = filters.pad_image(image, (1, 19), border)[0, 0, 0].numpy()
            ref = cv2.copyMakeBorder(image[0, 0].numpy(), 0, 0, 9, 9, BORDERS[border])[0]
            assert np.array_equal(padded, ref), (size, border)


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_gaussian_sigma_alone_is_opencvs_ksize_zero(backend):
    image = random_image(21, 21, seed=2)
    for sigma in np.round(np.arange(0.3, 5.01, 0.1), 2):
        sigma = float(sigma)
        assert_close(hwc(filters.gaussian_blur(chw(image), sigma, backend=backend)),
                     cv2.GaussianBlur(image, (0, 0), sigma))
    ours = filters.gaussian_blur(chw(image), (2.5, 1.1), backend=backend)  # (sigma_y, sigma_x)
    assert_close(hwc(ours), cv2.GaussianBlur(image, (0, 0), sigmaX=1.1, sigmaY=2.5))


def test_gaussian_kernel_size_is_the_width_opencv_uses():
    impulse = np.zeros((1, 121), np.float32)
    impulse[0, 60] = 1
    for sigma in np.round(np.arange(0.3, 5.01, 0.05), 2):
        width = np.count_nonzero(cv2.GaussianBlur(impulse, (0, 0), float(sigma)))
        assert filters.gaussian_kernel_size(float(sigma)) == width, sigma
    assert filters.gaussian_kernel_size(1.1) == 11


def _ops() -> dict:
    """name -> (zrenie op taking (image, backend), OpenCV on one HWC image)."""
    kernel = np.random.default_rng(3).normal(size=(3, 4)).astype(np.float32) / 4
    kx, ky = np.float32([0.25, 0.5, 0.25]), np.float32([-1, 0, 2, 0, -1]) / 4
    laplacian_abs_sum = kernel_abs_sum(lambda i: cv2.Laplacian(i, -1, ksize=5))

    def sobel_pair(img: np.ndarray, ksize: int) -> np.ndarray:
        return np.stack([cv2.Sobel(img, -1, 1, 0, ksize=ksize), cv2.Sobel(img, -1, 0, 1, ksize=ksize)], axis=-1)

    def unsharp(img: np.ndarray) -> np.ndarray:
        detail = img - cv2.GaussianBlur(img, (0, 0), 1.3)
        return np.clip(img + 0.7 * np.where(np.abs(detail) > 0.05, detail, 0), 0, 1)

    return {
        "box_blur": (lambda x, b: filters.box_blur(x, (3, 5), backend=b), lambda i: cv2.blur(i, (5, 3))),
        "gaussian_blur": (lambda x, b: filters.gaussian_blur(x, 1.4, backend=b),
                          lambda i: cv2.GaussianBlur(i, (0, 0), 1.4)),
        "median_blur": (lambda x, b: filters.median_blur(x, 5, "replicate", backend=b), lambda i: cv2.medianBlur(i, 5)),
        "bilateral_filter": (lambda x, b: filters.bilateral_filter(x, 5, 0.3, 1.5, backend=b),
                             lambda i: cv2.bilateralFilter(i, 5, 0.3, 1.5)),
        "filter2d": (lambda x, b: filters.filter2d(x, torch.from_numpy(kernel), "constant", backend=b),
                     lambda i: cv2.filter2D(i, -1, kernel, borderType=cv2.BORDER_CONSTANT)),
        "filter2d_separable": (lambda x, b: filters.filter2d_separable(x, kx, ky, "replicate", backend=b),
                               lambda i: cv2.sepFilter2D(i, -1, kx, ky, borderType=cv2.BORDER_REPLICATE)),
        "spatial_gradient": (lambda x, b: filters.spatial_gradient(x, kernel_size=5, backend=b).flatten(-4, -3),
                             lambda i: sobel_pair(i, 5).reshape(*i.shape[:2], -1)),  # channel c * 2 + axis
        "sobel": (lambda x, b: filters.sobel(x, backend=b),
                  lambda i: np.hypot(cv2.Sobel(i, -1, 1, 0), cv2.Sobel(i, -1, 0, 1)) / 8),
        "scharr": (lambda x, b: filters.scharr(x, normalized=False, border="constant", backend=b),
                   lambda i: np.hypot(cv2.Scharr(i, -1, 1, 0, borderType=cv2.BORDER_CONSTANT),
                                      cv2.Scharr(i, -1, 0, 1, borderType=cv2.BORDER_CONSTANT))),
        "laplacian": (lambda x, b: filters.laplacian(x, 5, backend=b),
                      lambda i: cv2.Laplacian(i, -1, ksize=5) / laplacian_abs_sum),
        "unsharp_mask": (lambda x, b: filters.unsharp_mask(x, 1.3, 0.7, 0.05, backend=b), unsharp),
    }


OPS = _ops()


@pytest.mark.parametrize("name", OPS)
def test_auto_matches_torch_and_opencv(name):
    op, reference = OPS[name]
    batch = torch.stack([chw(random_image(17, 23, seed=s)) for s in (4, 5)])  # (2, 3, 17, 23)
    outs = {backend: op(batch, backend) for backend in ALL_BACKENDS}
    for backend, out in outs.items():
        assert out.dtype == torch.float32 and out.shape == outs["torch"].shape, backend
        assert_close(out.numpy(), outs["torch"].numpy())
        for i in range(2):
            ref = reference(batch[i].permute(1, 2, 0).numpy())
            assert_close(out[i].permute(1, 2, 0).numpy(), ref)
            assert_close(op(batch[i], backend).permute(1, 2, 0).numpy(), ref)  # one (C, H, W) image


def test_auto_runs_opencv_where_it_is_faster(monkeypatch):
    calls = []
    for name in ("box_blur", "median_blur"):
        monkeypatch.setattr(filters.filters_cv, name, lambda image, *args, name=name: calls.append(name) or image)
    filters.box_blur(torch.rand(2, 3, 63, 64))  # linear filters of planes under 64x64: torch
    assert calls == []
    filters.box_blur(torch.rand(2, 3, 64, 64))
    filters.median_blur(torch.rand(2, 3, 5, 5))  # medians: OpenCV at any size
    assert calls == ["box_blur", "median_blur"]


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_float64_stays_float64_and_matches_opencv(backend):
    image = random_image(9, 11).astype(np.float64)
    x = chw(image)
    for name in ("box_blur", "gaussian_blur", "filter2d_separable", "sobel", "laplacian", "median_blur",
                 "bilateral_filter"):
        op, reference = OPS[name]
        if backend == "opencv" and name in ("median_blur", "bilateral_filter"):  # float32 only in OpenCV
            with pytest.raises(ConfigError, match="no equivalent"):
                op(x, backend)
            continue
        out = op(x, backend)
        assert out.dtype == torch.float64, name
        tol = 1e-12 if name not in ("median_blur", "bilateral_filter") else TOL  # OpenCV's are float32 only
        assert_close(out.permute(1, 2, 0).numpy(), reference(image.astype(np.float32) if tol == TOL else image), tol)


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_empty_batches_give_empty_tensors(backend):
    empty = torch.rand(0, 3, 7, 9)
    for name, (op, _) in OPS.items():
        expected = (0, 3, 2, 7, 9) if name == "spatial_gradient" else (0, 3, 7, 9)
        raw = filters.spatial_gradient(empty, backend=backend) if name == "spatial_gradient" else op(empty, backend)
        assert raw.shape == expected and raw.dtype == torch.float32, name
    if backend != "opencv":  # rectangular medians are torch only
        assert filters.median_blur(empty, (3, 5), backend=backend).shape == (0, 3, 7, 9)


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_values_outside_unit_range_are_filtered(backend):
    image = (random_image(8, 10, seed=6) * 600 - 200).astype(np.float32)  # [-200, 400]
    x = chw(image)
    assert_close(hwc(filters.box_blur(x, 3, backend=backend)), cv2.blur(image, (3, 3)))
    assert_close(hwc(filters.median_blur(x, 3, backend=backend)), naive_median(image, 3, 3, "reflect"))
    assert_close(hwc(filters.bilateral_filter(x, 5, 80.0, 2.0, backend=backend)),
                 cv2.bilateralFilter(image, 5, 80.0, 2.0))
    assert_close(hwc(filters.laplacian(x, 3, normalized=False, backend=backend)), cv2.Laplacian(image, -1, ksize=3))


@pytest.mark.parametrize("diameter", [1, 2, 0])
@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_bilateral_radius_is_at_least_one_as_opencv(diameter, backend):
    image = random_image(6, 7, seed=7)
    ours = filters.bilateral_filter(chw(image), diameter, 0.2, 0.5, backend=backend)  # 0: radius round(0.75) = 1
    assert_close(hwc(ours), cv2.bilateralFilter(image, diameter, 0.2, 0.5))


def test_backend_choice_is_checked_and_passed_through_modules():
    image = torch.rand(1, 3, 8, 8)
    with pytest.raises(ConfigError, match="backend"):
        filters.box_blur(image, backend="cuda")
    with pytest.raises(ConfigError, match="no equivalent"):
        filters.median_blur(image, (3, 5), backend="opencv")
    with pytest.raises(ConfigError, match="gradient"):
        filters.sobel(image.clone().requires_grad_(), backend="opencv")
    module = GaussianBlur(sigma=2.0, backend="torch")
    assert torch.equal(module(image), filters.gaussian_blur(image, 2.0, backend="torch"))


def test_a_kernel_that_needs_a_gradient_gets_one_on_auto():
    image = torch.rand(1, 2, 6, 7, dtype=torch.float64)
    kernel = torch.rand(3, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda k: filters.filter2d(image, k), (kernel,))
    kx = torch.rand(3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda k: filters.filter2d_separable(image, k, k.flip(0)), (kx,))
