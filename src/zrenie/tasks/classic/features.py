"""Images to feature vectors for the classical models: raw pixels, HOG, and a trained network's embeddings.

Each function takes a batch of images, Tensor or ndarray (N, C, H, W), or (N, H, W) for grayscale
(scikit-learn's `load_digits().images`), and returns an ndarray (N, F), one row per image.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from zrenie.errors import ShapeError

# By default an image is 4x4 cells (at least 2 pixels each) in 2x2-cell blocks: 3x3 blocks, 324 values, for
# the 8x8 digits (2-pixel cells), 28x28 MNIST (7) and 32x32 CIFAR (8) alike. On digits (stratified 80/20,
# seed 0) 2-pixel cells give kNN 0.93-0.94 accuracy; 4-pixel cells, a single block, only 0.78-0.83.
HOG_CELLS_ACROSS = 4
HOG_CELLS_PER_BLOCK = (2, 2)


class FeatureInputError(ShapeError, ValueError):
    """Images that cannot give the features asked for: a wrong rank or channel count, too small for a block.

    A ShapeError (one line at the CLI) and a ValueError, as scikit-image raises for the same mistakes.
    """


def _as_images(images: Tensor | np.ndarray, what: str) -> np.ndarray:
    """An ndarray (N, C, H, W) of the images, a channel axis added to (N, H, W)."""
    array = images.detach().cpu().numpy() if isinstance(images, Tensor) else np.asarray(images)
    if array.ndim == 3:
        array = array[:, None]
    if array.ndim != 4:
        raise FeatureInputError(f"{what}: images must be (N, C, H, W) or (N, H, W), got shape {array.shape}")
    return array


def _scaled(array: np.ndarray) -> np.ndarray:
    """uint8 to float32 in [0, 1]; floats as they are; other integers to float64 as they are."""
    if array.dtype == np.uint8:
        return array.astype(np.float32) / 255
    return array if array.dtype.kind == "f" else array.astype(np.float64)


def pixel_features(images: Tensor | np.ndarray) -> np.ndarray:
    """The pixels of each image as one row, in (C, H, W) order.

    Args:
        images: (N, C, H, W) or (N, H, W). uint8 images are scaled to [0, 1] (float32); float images are
            taken as given (already normalised, or the digits' 0-16 levels) and keep their dtype; other
            integer images become float64 with their values unchanged.

    Returns:
        ndarray (N, C * H * W).
    """
    array = _scaled(_as_images(images, "pixel_features"))
    return array.reshape(array.shape[0], -1)


def hog_features(images: Tensor | np.ndarray, orientations: int = 9,
                 pixels_per_cell: tuple[int, int] | None = None,
                 cells_per_block: tuple[int, int] = HOG_CELLS_PER_BLOCK) -> np.ndarray:
    """Histograms of oriented gradients (Dalal and Triggs 2005), scikit-image's `hog` on each image.

    Colour images are turned to grayscale first (`skimage.color.rgb2gray`, ITU-R 709 weights). Pixel values
    are scaled as in `pixel_features`; blocks are L2-Hys normalised, so the scale barely matters.

    Args:
        images: (N, C, H, W) with C 1 or 3, or (N, H, W).
        orientations: histogram bins over 0-180 degrees.
        pixels_per_cell: (rows, cols) of a cell; None sizes cells to a quarter of the shorter side, at
            least 2 pixels (2x2 for the 8x8 digits, 8x8 for 32x32 images).
        cells_per_block: (rows, cols) of cells normalised together.

    Returns:
        ndarray (N, F) with F = orientations * cells_per_block[0] * cells_per_block[1] times the number of
        block positions.

    Raises:
        FeatureInputError: another channel count, or images smaller than one block.
    """
    from skimage.color import rgb2gray
    from skimage.feature import hog

    array = _scaled(_as_images(images, "hog_features"))
    n, c, h, w = array.shape
    if pixels_per_cell is None:
        side = max(2, min(h, w) // HOG_CELLS_ACROSS)
        pixels_per_cell = (side, side)
    if c not in (1, 3):
        raise FeatureInputError(f"hog_features: images must have 1 or 3 channels, got {c}")
    block = (pixels_per_cell[0] * cells_per_block[0], pixels_per_cell[1] * cells_per_block[1])
    if h < block[0] or w < block[1]:
        raise FeatureInputError(f"hog_features: {h}x{w} images are smaller than one {block[0]}x{block[1]} block "
                                f"(pixels_per_cell {tuple(pixels_per_cell)} x cells_per_block "
                                f"{tuple(cells_per_block)}); use smaller cells")
    gray = array[:, 0] if c == 1 else rgb2gray(array.transpose(0, 2, 3, 1))  # (N, H, W)
    rows = [hog(image, orientations=orientations, pixels_per_cell=tuple(pixels_per_cell),
                cells_per_block=tuple(cells_per_block)) for image in gray]
    if not rows:
        blocks = (h // pixels_per_cell[0] - cells_per_block[0] + 1) * (w // pixels_per_cell[1] - cells_per_block[1] + 1)
        return np.zeros((0, blocks * orientations * cells_per_block[0] * cells_per_block[1]))
    return np.stack(rows)


def penultimate_linear(model: nn.Module) -> nn.Linear:
    """The classifier layer whose input is the embedding: the last Linear layer of `model`.

    Auxiliary heads (a top-level child named `aux*`, as in GoogLeNet and Inception-v3) are passed over.
    """
    found = [m for name, m in model.named_modules()
             if isinstance(m, nn.Linear) and not name.split(".")[0].lower().startswith("aux")]
    if not found:
        raise FeatureInputError(f"model_features: {type(model).__name__} has no Linear layer to read features at")
    return found[-1]


def model_features(model: nn.Module, images: Tensor | np.ndarray, batch_size: int = 256,
                   device: str | torch.device = "cpu") -> np.ndarray:
    """A trained network's penultimate-layer features: the input of its last Linear layer.

    The model runs in eval mode (dropout off, batchnorm on its running statistics) under no_grad, batch by
    batch; a forward pre-hook on the last Linear layer reads its input. The model is moved to `device` and
    its train/eval mode is restored afterwards.

    Args:
        model: a classifier ending in a Linear layer (every zrenie classification model does).
        images: (N, C, H, W), already as the model expects them (float, normalised).
        batch_size: images per forward pass.
        device: where the model runs.

    Returns:
        ndarray (N, F) of float32, F the last Linear layer's in_features.
    """
    head = penultimate_linear(model)
    images = torch.as_tensor(images)
    if images.ndim != 4:
        raise FeatureInputError(f"model_features: images must be (N, C, H, W), got shape {tuple(images.shape)}")
    captured: list[Tensor] = []
    hook = head.register_forward_pre_hook(lambda module, args: captured.append(args[0].detach()))
    training = model.training
    model.to(device).eval()
    rows = []
    try:
        with torch.no_grad():
            for start in range(0, images.shape[0], batch_size):
                captured.clear()
                model(images[start:start + batch_size].to(device))
                if not captured:
                    raise FeatureInputError(f"model_features: {type(model).__name__}'s last Linear layer did not "
                                            f"run in eval mode, so it holds no features")
                rows.append(captured[-1].flatten(1).float().cpu())  # (B, F)
    finally:
        hook.remove()
        model.train(training)
    if not rows:
        return np.zeros((0, head.in_features), dtype=np.float32)
    return torch.cat(rows).numpy()
