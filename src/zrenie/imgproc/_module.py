"""The thin `nn.Module` wrapper every imgproc op gets: parameters fixed at construction, image at call."""

from __future__ import annotations

import inspect
from typing import Any, Callable

from torch import Tensor, nn

from zrenie.errors import ConfigError


class OpModule(nn.Module):
    """Holds the non-image arguments of `op`; `forward(image)` calls `op(image, *args, **kwargs)`.

    A subclass only names its op: `class GaussianBlur(OpModule): op = staticmethod(gaussian_blur)`,
    then `GaussianBlur(sigma=2.0)(image) == gaussian_blur(image, sigma=2.0)`.
    """

    op: Callable[..., Tensor]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()
        try:  # fail at construction, not at the first forward
            inspect.signature(type(self).op).bind(None, *args, **kwargs)
        except TypeError as err:
            raise ConfigError(f"{type(self).__name__}: {err}") from None
        self.args, self.kwargs = args, kwargs

    def forward(self, image: Tensor) -> Tensor:
        return type(self).op(image, *self.args, **self.kwargs)

    def extra_repr(self) -> str:
        return ", ".join([repr(a) for a in self.args] + [f"{k}={v!r}" for k, v in self.kwargs.items()])
