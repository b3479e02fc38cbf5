"""Which code runs an op: OpenCV for CPU images that need no gradient, zrenie's PyTorch code otherwise.

Every op with an OpenCV equivalent takes `backend=`:

- "auto" (the default): OpenCV when the image is on the CPU and neither it nor the op needs autograd,
  else PyTorch. Eager PyTorch makes one pass over memory per elementwise step; OpenCV fuses them, so
  on a CPU frame it is 2x to 30x faster (benchmarks/imgproc.py). The results agree to the tolerance
  each op's tests state.
- "torch": zrenie's own PyTorch code, always: the code the course reads, differentiable, on any device.
- "opencv": OpenCV, always (an error for a GPU tensor or one that needs a gradient).

OpenCV is imported on first use, not with zrenie.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import Tensor

from zrenie.errors import ConfigError

BACKENDS = ("auto", "torch", "opencv")


def use_opencv(image: Tensor, backend: str, supported: bool = True) -> bool:
    """Whether an op runs OpenCV on `image`.

    Args:
        image: the op's input.
        backend: "auto", "torch" or "opencv".
        supported: False where OpenCV cannot do what was asked (a dtype, kernel or border it lacks): "auto"
            then runs PyTorch, and "opencv" is an error.
    """
    if backend not in BACKENDS:
        raise ConfigError(f"backend: expected one of {', '.join(BACKENDS)}, got {backend!r}")
    if backend == "torch":
        return False
    on_cpu = image.device.type == "cpu" and not (image.requires_grad and torch.is_grad_enabled())
    if backend == "opencv":
        if not on_cpu:
            raise ConfigError("backend='opencv' needs a CPU tensor that needs no gradient; use backend='torch' "
                              f"(got a {image.device.type} tensor{', requiring grad' if image.requires_grad else ''})")
        if not supported:
            raise ConfigError("backend='opencv': OpenCV has no equivalent for these arguments; use backend='torch'")
        return True
    return on_cpu and supported


def cv2_module():
    """The cv2 module (a dependency of zrenie), imported on first use."""
    import cv2

    return cv2


def images_hwc(image: Tensor) -> np.ndarray:
    """A `(B, H, W, C)` numpy view of Tensor[B, C, H, W] on the CPU, float32 or float64.

    Without a copy when the tensor is channels_last (or has one channel); else one transposing copy.
    Other float dtypes (half, bfloat16) are read as float32.
    """
    if image.dtype not in (torch.float32, torch.float64):
        image = image.float()
    array = image.detach().permute(0, 2, 3, 1).numpy()
    return array if array.flags.c_contiguous else np.ascontiguousarray(array)


def per_image(fn: Callable[[np.ndarray], np.ndarray], image: Tensor, out_channels: int | None = None) -> Tensor:
    """Runs `fn` on each `(H, W, C)` image of a batch (`(H, W)` when C = 1) and stacks the results.

    Args:
        fn: an OpenCV call on one image; it may return `(H', W')` or `(H', W', C')`.
        image: Tensor[B, C, H, W] on the CPU.
        out_channels: the channels of the output (default: the input's).

    Returns:
        Tensor[B, C', H', W'] of the input's dtype (float32 for half inputs, converted back), NCHW-contiguous.
    """
    batch = images_hwc(image)
    outs = [fn(one[:, :, 0] if one.shape[2] == 1 else one) for one in batch]
    if not outs:
        channels = image.shape[1] if out_channels is None else out_channels
        return image.new_empty((0, channels, *image.shape[2:]))
    stacked = np.stack([o[:, :, None] if o.ndim == 2 else o for o in outs])
    out = torch.from_numpy(stacked).permute(0, 3, 1, 2)
    return out.to(image.dtype).contiguous()
