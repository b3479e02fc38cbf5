"""The image reader and writer now live in `zrenie.imgproc.io`; this module re-exports them for old imports."""

from zrenie.imgproc.io import read_image, write_image

__all__ = ["read_image", "write_image"]
