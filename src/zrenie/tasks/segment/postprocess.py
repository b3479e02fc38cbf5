"""Refining a predicted class map with the image: superpixel voting and a fully connected CRF.

- `superpixel_vote`: SLIC superpixels (Achanta et al. 2012, scikit-image's `slic`), and every pixel of
  a superpixel takes the class most of its pixels were given. Edges of objects snap to colour edges.
- `dense_crf`: the fully connected CRF of Krahenbuhl & Koltun (2011) with a Potts compatibility and
  two Gaussian kernels, appearance `w1 exp(-|p_i - p_j|^2 / 2 theta_a^2 - |I_i - I_j|^2 / 2 theta_b^2)` and
  smoothness `w2 exp(-|p_i - p_j|^2 / 2 theta_g^2)`, by mean-field iterations. Written with dense
  pairwise matrices: each iteration costs O(N^2) time in the N pixels and the kernel O(N^2) memory
  (computed in row blocks of `BLOCK` pixels), so it is refused above `MAX_CRF_PIXELS` (128 x 128) in
  one line; the paper's permutohedral lattice makes it linear, at the cost of the code the course reads.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from zrenie.errors import ConfigError, ShapeError

POSTPROCESS = ("none", "superpixels", "crf")
MAX_CRF_PIXELS = 128 * 128
BLOCK = 2048


def superpixel_vote(image: Tensor, labels: Tensor, num_classes: int, n_segments: int = 200,
                    compactness: float = 10.0) -> Tensor:
    """Every SLIC superpixel takes its majority class.

    Args:
        image: Tensor[3, H, W] (or [1, H, W]) in [0, 1].
        labels: Tensor[H, W] int64 class per pixel.
        num_classes: K.
        n_segments, compactness: SLIC's (about how many superpixels; colour vs space weight).

    Returns:
        Tensor[H, W] int64; ties go to the lower class index.
    """
    from skimage.segmentation import slic

    if image.shape[-2:] != labels.shape:
        raise ShapeError(f"superpixels: image {tuple(image.shape)} and labels {tuple(labels.shape)} differ in size")
    array = image.detach().cpu().permute(1, 2, 0).double().numpy()
    segments = slic(array, n_segments=n_segments, compactness=compactness, start_label=0,
                    channel_axis=-1 if array.shape[2] == 3 else None)
    if array.shape[2] == 1 and segments.ndim == 3:
        segments = segments[..., 0]
    seg = torch.from_numpy(segments.astype(np.int64))
    counts = torch.bincount(seg.flatten() * num_classes + labels.cpu().flatten(),
                            minlength=(int(seg.max()) + 1) * num_classes).view(-1, num_classes)
    return counts.argmax(1)[seg].to(labels.device)


def _kernel_rows(features: Tensor, start: int, stop: int) -> Tensor:
    """exp(-|f_i - f_j|^2 / 2) for rows start..stop against every pixel (features already scaled)."""
    d = torch.cdist(features[start:stop], features).pow_(2)
    return d.mul_(-0.5).exp_()


def dense_crf(image: Tensor, probs: Tensor, iterations: int = 5, w_appearance: float = 10.0,
              w_smooth: float = 3.0, theta_alpha: float = 20.0, theta_beta: float = 0.05,
              theta_gamma: float = 3.0) -> Tensor:
    """Mean-field inference of a fully connected CRF; returns refined probabilities Tensor[K, H, W].

    Args:
        image: Tensor[C, H, W] in [0, 1] (colour differences in these units: theta_beta 0.05 ~ 13/255).
        probs: Tensor[K, H, W] the model's probabilities (the unary is -log p).
        iterations: mean-field steps.
        w_appearance, theta_alpha, theta_beta: weight, position scale (pixels) and colour scale of the
            appearance kernel.
        w_smooth, theta_gamma: weight and position scale (pixels) of the smoothness kernel.
    """
    k, h, w = probs.shape
    if h * w > MAX_CRF_PIXELS:
        raise ConfigError(f"segment.postprocess=crf: {h}x{w} = {h * w:,} pixels is over the dense CRF's limit of "
                          f"{MAX_CRF_PIXELS:,} (its cost grows with the square); use superpixels or a smaller data.size")
    dtype = torch.float64
    ys, xs = torch.meshgrid(torch.arange(h, dtype=dtype), torch.arange(w, dtype=dtype), indexing="ij")
    pos = torch.stack([ys.flatten(), xs.flatten()], 1).to(probs.device)
    colour = image.detach().to(probs.device, dtype).flatten(1).T  # (N, C)
    appearance = torch.cat([pos / theta_alpha, colour / theta_beta], 1)
    smooth = pos / theta_gamma
    unary = -probs.detach().to(dtype).clamp_min(1e-12).log().flatten(1).T  # (N, K)
    q = torch.softmax(-unary, 1)
    n = h * w
    for _ in range(iterations):
        message = torch.empty_like(q)
        for start in range(0, n, BLOCK):
            stop = min(n, start + BLOCK)
            kernel = w_appearance * _kernel_rows(appearance, start, stop) + w_smooth * _kernel_rows(smooth, start, stop)
            kernel[torch.arange(stop - start), torch.arange(start, stop)] = 0  # no message to itself
            message[start:stop] = kernel @ q
        # Potts: a label pays for the neighbours' mass on every other label
        pairwise = message.sum(1, keepdim=True) - message
        q = torch.softmax(-unary - pairwise, 1)
    return q.T.reshape(k, h, w).to(probs.dtype)


def refine(method: str, image: Tensor, logits: Tensor) -> Tensor:
    """Class map Tensor[H, W] of one image from its logits Tensor[K, H, W] (K = 1: one object logit) after
    `method` ("none", "superpixels" or "crf"); `image` is Tensor[C, H, W] in [0, 1]."""
    if method not in POSTPROCESS:
        raise ConfigError(f"segment.postprocess: expected one of {', '.join(POSTPROCESS)}, got {method!r}")
    logits = logits.float()
    probs = torch.cat([-logits, logits]).sigmoid() if logits.shape[0] == 1 else logits.softmax(0)
    if method == "crf":
        probs = dense_crf(image, probs)
    labels = probs.argmax(0)
    if method == "superpixels":
        labels = superpixel_vote(image, labels, probs.shape[0])
    return labels
