"""More colour spaces (Luv, analog YUV, YUV 4:2:0, RGBA, Bayer demosaicing) and what every conversion shares.

The shared pieces come first: the sRGB curve, the XYZ matrix and the range checks of the inverse
conversions; `color.py` imports them. The OpenCV block loops of both modules are in `_cvpixels.py`.
Conventions are those of `color.py`: float images in [0, 1], (B, C, H, W) or (C, H, W), and
`backend="auto" | "torch" | "opencv"` where OpenCV has the conversion for float images.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from zrenie.errors import ShapeError
from zrenie.imgproc._backend import cv2_module, use_opencv
from zrenie.imgproc._cvpixels import affine, cv_ok, opencv_pixels
from zrenie.imgproc._blocks import pointwise_in_blocks
from zrenie.imgproc._checks import RANGE_TOLERANCE, batched, check_image
from zrenie.imgproc._module import OpModule

# sRGB primaries to CIE XYZ, D65 (IEC 61966-2-1); the same matrix as OpenCV and scikit-image.
_RGB_TO_XYZ = ((0.412453, 0.357580, 0.180423), (0.212671, 0.715160, 0.072169), (0.019334, 0.119193, 0.950227))
# CIE D65 2-degree white (X, Y, Z), the values scikit-image uses; OpenCV's differ in the 5th digit.
D65_WHITE = (0.95047, 1.0, 1.08883)


def _mix(image: Tensor, matrix, offset=None) -> Tensor:
    """`out[b, o] = sum_c matrix[o][c] * image[b, c] + offset[o]` as one batched matrix product.

    A matmul over the flattened pixels beats a 1x1 conv2d on CPU by ~3x on a 1080p frame and by
    ~90x on a batch of 64 images of 256x256 (2.8 ms vs 259 ms, one thread; torch 2.15).
    """
    batch, channels, height, width = image.shape
    weight = torch.as_tensor(matrix, dtype=torch.float64).to(image).view(-1, channels)
    flat = image.reshape(batch, channels, height * width)
    if offset is None:
        out = torch.matmul(weight, flat)
    else:
        bias = torch.as_tensor(offset, dtype=torch.float64).to(image).view(1, -1, 1)
        out = torch.baddbmm(bias.expand(batch, -1, 1), weight.expand(batch, -1, -1), flat)
    return out.view(batch, weight.shape[0], height, width)  # the count, not -1: B may be 0


def _check_rgb(image: Tensor, name: str = "image") -> tuple[float, float]:
    """check_image for an RGB image in [0, 1]; returns the (lowest, highest) value found."""
    return check_image(image, channels=3, name=name, unit_range=True)  # type: ignore[return-value]


def _check_ranges(image: Tensor, bounds: tuple[tuple[str, float, float], ...], name: str = "image") -> None:
    """Raises a one-line ShapeError unless channel c of `image` lies in `bounds[c] = (label, low, high)`.

    Bounds of (0, 1) for every channel cost one pass (check_image's); other bounds one pass more per
    bounded channel. The tolerance is check_image's, scaled to the width of the range.
    """
    unit = all((low, high) == (0, 1) for _, low, high in bounds)
    try:
        check_image(image, channels=len(bounds), name=name, unit_range=unit)
    except ShapeError:
        if not unit:
            raise
        check_image(image, channels=len(bounds), name=name)  # raises again unless only the range was wrong
    else:
        if unit or not image.numel():
            return
    labels = ", ".join(label for label, _, _ in bounds)
    for channel, (label, low, high) in enumerate(bounds):
        if low == -float("inf") and high == float("inf"):
            continue
        found_low, found_high = (float(v) for v in torch.aminmax(image.detach()[..., channel, :, :]))
        tolerance = RANGE_TOLERANCE * (high - low if high - low < float("inf") else 1)
        if found_low < low - tolerance or found_high > high + tolerance:
            raise ShapeError(f"{name}: expected {label} (channel {channel} of {labels}) in [{low:.4g}, {high:.4g}], "
                             f"found {found_low:.4g} to {found_high:.4g}")


def _decode_srgb(image: Tensor) -> Tensor:
    # The clamp keeps the unused branch of torch.where finite, so gradients stay finite too.
    curve = ((image.clamp_min(0.04045) + 0.055) / 1.055) ** 2.4
    return torch.where(image > 0.04045, curve, image / 12.92)


def _encode_srgb(image: Tensor) -> Tensor:
    curve = 1.055 * image.clamp_min(0.0031308) ** (1 / 2.4) - 0.055
    return torch.where(image > 0.0031308, curve, image * 12.92)


_XYZ_TO_RGB = np.linalg.inv(np.array(_RGB_TO_XYZ))


_LAB_EPS = (6 / 29) ** 3  # CIE 15: below this, f(t) is the linear segment


def _lab_f(t: Tensor) -> Tensor:
    return torch.where(t > _LAB_EPS, t.clamp_min(_LAB_EPS) ** (1 / 3), t / (3 * (6 / 29) ** 2) + 4 / 29)


def _lab_f_inv(t: Tensor) -> Tensor:
    return torch.where(t > 6 / 29, t**3, 3 * (6 / 29) ** 2 * (t - 4 / 29))


def _ycbcr_matrix(color_range: str) -> tuple[Tensor, Tensor]:
    """(matrix, offset) of RGB -> YCbCr in BT.601, scaled for [0, 1] values."""
    kr, kb = 0.299, 0.114
    kg = 1 - kr - kb
    full = torch.tensor([[kr, kg, kb],
                         [-0.5 * kr / (1 - kb), -0.5 * kg / (1 - kb), 0.5],
                         [0.5, -0.5 * kg / (1 - kr), -0.5 * kb / (1 - kr)]], dtype=torch.float64)
    if color_range == "full":  # JPEG / ITU-T T.871: Y, Cb, Cr all span [0, 1]
        return full, torch.tensor([0.0, 0.5, 0.5], dtype=torch.float64)
    if color_range == "studio":  # BT.601 studio swing: Y in [16, 235] / 255, chroma in [16, 240] / 255
        scale = torch.tensor([219.0, 224.0, 224.0], dtype=torch.float64).view(3, 1) / 255
        return full * scale, torch.tensor([16.0, 128.0, 128.0], dtype=torch.float64) / 255
    raise ShapeError(f"color_range: expected 'full' or 'studio', got {color_range!r}")


# ---------------------------------------------------------------------------------------------- Luv

_INF = float("inf")
_LUV = (("L", 0, 100), ("u", -_INF, _INF), ("v", -_INF, _INF))
# (u', v') of the white point (CIE 15): the origin of u* and v*.
_WHITE_UV = (4 * D65_WHITE[0] / (D65_WHITE[0] + 15 * D65_WHITE[1] + 3 * D65_WHITE[2]),
             9 * D65_WHITE[1] / (D65_WHITE[0] + 15 * D65_WHITE[1] + 3 * D65_WHITE[2]))


def _rgb_to_luv(image: Tensor) -> Tensor:
    x, y, z = _mix(_decode_srgb(image), _RGB_TO_XYZ).unbind(-3)
    lightness = 116 * _lab_f(y) - 16  # Y of the white is 1
    denominator = torch.where(x + 15 * y + 3 * z > 0, x + 15 * y + 3 * z, 1.0)  # black: x = y = 0, L = 0
    u = 13 * lightness * (4 * x / denominator - _WHITE_UV[0])
    v = 13 * lightness * (9 * y / denominator - _WHITE_UV[1])
    return torch.stack((lightness, u, v), -3)


def _luv_to_rgb(image: Tensor, clip: bool) -> Tensor:
    lightness, u, v = image.unbind(-3)
    y = _lab_f_inv((lightness + 16) / 116)
    scale = 13 * torch.where(lightness > 0, lightness, 1.0)  # L = 0 gives y = 0, so x = z = 0
    u_prime, v_prime = u / scale + _WHITE_UV[0], v / scale + _WHITE_UV[1]
    quarter = y / (4 * torch.where(v_prime > 0, v_prime, 1.0))
    xyz = torch.stack((9 * u_prime * quarter, y, (12 - 3 * u_prime - 20 * v_prime) * quarter), -3)
    rgb = _encode_srgb(_mix(xyz, _XYZ_TO_RGB))
    return rgb.clamp(0, 1) if clip else rgb


@batched
def rgb_to_luv(image: Tensor) -> Tensor:
    """sRGB -> CIE L*u*v* (D65 white, sRGB curve decoded), with the constants of `rgb_to_lab`.

    OpenCV's float COLOR_RGB2Luv uses its own white point digits and a spline for the sRGB curve: it
    differs by up to ~0.02 units, more than the 1e-4 an OpenCV path must agree to, so there is one
    PyTorch path (no `backend`); the tests compare it with OpenCV and scikit-image's rgb2luv.

    Args:
        image: Tensor[B, 3, H, W] sRGB in [0, 1].

    Returns:
        Tensor[B, 3, H, W]: L in [0, 100], u in [-83.1, 175.1] and v in [-134.1, 107.4] for sRGB
        colours (within OpenCV's documented float ranges, [-134, 220] and [-140, 122]).
    """
    _check_rgb(image)
    return pointwise_in_blocks(_rgb_to_luv, image)


@batched
def luv_to_rgb(image: Tensor, clip: bool = True) -> Tensor:
    """CIE L*u*v* (D65) -> sRGB; the inverse of `rgb_to_luv`.

    Args:
        image: Tensor[B, 3, H, W] (L, u, v), L in [0, 100].
        clip: clamp out-of-gamut colours to [0, 1], as scikit-image's luv2rgb does.

    Returns:
        Tensor[B, 3, H, W] sRGB.
    """
    _check_ranges(image, _LUV)
    return pointwise_in_blocks(_luv_to_rgb, image, clip)


# ---------------------------------------------------------------------------------------------- YUV

# BT.601 analog YUV as OpenCV's float COLOR_RGB2YUV: U = 0.492 (B - Y), V = 0.877 (R - Y), each + 0.5.
_U_SCALE, _V_SCALE = 0.492, 0.877
_YUV_MATRIX = torch.tensor([[0.299, 0.587, 0.114],
                            [-_U_SCALE * 0.299, -_U_SCALE * 0.587, _U_SCALE * 0.886],
                            [_V_SCALE * 0.701, -_V_SCALE * 0.587, -_V_SCALE * 0.114]], dtype=torch.float64)
_YUV_OFFSET = torch.tensor([0.0, 0.5, 0.5], dtype=torch.float64)
_YUV = (("Y", 0, 1), ("U", 0.5 - _U_SCALE * 0.886, 0.5 + _U_SCALE * 0.886),
        ("V", 0.5 - _V_SCALE * 0.701, 0.5 + _V_SCALE * 0.701))


@batched
def rgb_to_yuv(image: Tensor, backend: str = "auto") -> Tensor:
    """RGB -> analog YUV (BT.601 luma, U = 0.492 (B - Y) + 0.5, V = 0.877 (R - Y) + 0.5), as OpenCV.

    The chroma is centred at 0.5, as in OpenCV's float COLOR_RGB2YUV (kornia centres it at 0):
    Y and U stay in [0, 1], V spans [-0.115, 1.115]. For the digital YCbCr of JPEG and video see
    `rgb_to_ycbcr` and `rgb_to_yuv420`.

    Args:
        image: Tensor[B, 3, H, W] in [0, 1].
        backend: "auto", "torch" or "opencv" (cv2.transform by the same matrix as COLOR_RGB2YUV).

    Returns:
        Tensor[B, 3, H, W] (Y, U, V).
    """
    _check_rgb(image)
    if use_opencv(image, backend, cv_ok(image)):
        return affine(image, _YUV_MATRIX, _YUV_OFFSET)
    return pointwise_in_blocks(_mix, image, _YUV_MATRIX, _YUV_OFFSET)


@batched
def yuv_to_rgb(image: Tensor, backend: str = "auto") -> Tensor:
    """Analog YUV (as `rgb_to_yuv` returns it) -> RGB, by the exact inverse matrix.

    OpenCV's COLOR_YUV2RGB rounds its inverse to 1.14, 0.395, 0.581 and 2.032 and is off by up to
    1e-4; the exact inverse makes `yuv_to_rgb(rgb_to_yuv(x))` give x back to 1e-6.

    Args:
        image: Tensor[B, 3, H, W]: Y in [0, 1], U in [0.064, 0.936], V in [-0.115, 1.115].
        backend: "auto", "torch" or "opencv" (cv2.transform by the exact inverse).

    Returns:
        Tensor[B, 3, H, W] RGB, not clipped.
    """
    _check_ranges(image, _YUV)
    inverse = torch.linalg.inv(_YUV_MATRIX)
    if use_opencv(image, backend, cv_ok(image)):
        return affine(image, inverse, -(inverse @ _YUV_OFFSET))
    return pointwise_in_blocks(_mix, image, inverse, -(inverse @ _YUV_OFFSET))


# ----------------------------------------------------------------------------------------- YUV 4:2:0

_CHROMA = ("average", "top_left")


def rgb_to_yuv420(image: Tensor, color_range: str = "studio", chroma: str = "average") -> tuple[Tensor, Tensor]:
    """RGB -> YUV 4:2:0 planes: luma at full resolution, chroma at half the height and width.

    "YUV 4:2:0" in OpenCV (COLOR_RGB2YUV_I420) and in video codecs is BT.601 YCbCr, studio range:
    Y in [16, 235] / 255, U = Cb and V = Cr in [16, 240] / 255; `color_range="full"` gives JPEG's.

    Args:
        image: Tensor[B, 3, H, W] or [3, H, W] in [0, 1], H and W even.
        color_range: "studio" (OpenCV's I420, video) or "full" (JPEG), as in `rgb_to_ycbcr`.
        chroma: how 2x2 pixels share one chroma sample: "average" (their mean, as libyuv, FFmpeg's
            swscale and kornia: less aliasing) or "top_left" (the top-left pixel's, as OpenCV).

    Returns:
        (Y, UV): Tensor[B, 1, H, W] and Tensor[B, 2, H/2, W/2] (no B for a [3, H, W] input).
    """
    _check_rgb(image)
    if image.shape[-2] % 2 or image.shape[-1] % 2:
        raise ShapeError("image: expected an even height and width (4:2:0 halves both), "
                         f"got shape {tuple(image.shape)}")
    if chroma not in _CHROMA:
        raise ShapeError(f"chroma: expected one of {', '.join(_CHROMA)}, got {chroma!r}")
    matrix, offset = _ycbcr_matrix(color_range)
    batch = image if image.dim() == 4 else image.unsqueeze(0)
    luma = _mix(batch, matrix[:1], offset[:1])
    sampled = F.avg_pool2d(batch, 2) if chroma == "average" else batch[..., ::2, ::2]  # chroma is linear in RGB
    uv = _mix(sampled, matrix[1:], offset[1:])
    return (luma, uv) if image.dim() == 4 else (luma[0], uv[0])


def yuv420_to_rgb(y: Tensor, uv: Tensor, color_range: str = "studio", clip: bool = True) -> Tensor:
    """YUV 4:2:0 planes -> RGB; the inverse of `rgb_to_yuv420` up to the lost chroma resolution.

    Each chroma sample is repeated over its 2x2 pixels (nearest), as OpenCV's COLOR_YUV2RGB_I420.

    Args:
        y: Tensor[B, 1, H, W] or [1, H, W] in [0, 1], H and W even.
        uv: Tensor[B, 2, H/2, W/2] or [2, H/2, W/2] in [0, 1].
        color_range: "studio" or "full", as the planes were made.
        clip: clamp to [0, 1], as OpenCV's 8-bit result saturates.

    Returns:
        Tensor[B, 3, H, W] (or [3, H, W]).
    """
    check_image(y, channels=1, name="y", unit_range=True)
    check_image(uv, channels=2, name="uv", unit_range=True)
    height, width = y.shape[-2:]
    if height % 2 or width % 2 or y.dim() != uv.dim() or uv.shape[-2:] != (height // 2, width // 2) or (
            y.dim() == 4 and y.shape[0] != uv.shape[0]):
        raise ShapeError(f"y, uv: expected (B, 1, H, W) with H and W even and (B, 2, H/2, W/2), got shapes "
                         f"{tuple(y.shape)} and {tuple(uv.shape)}")
    matrix, offset = _ycbcr_matrix(color_range)
    inverse = torch.linalg.inv(matrix)
    full = uv.repeat_interleave(2, -2).repeat_interleave(2, -1)
    ycc = torch.cat((y, full), -3)
    rgb = _mix(ycc if ycc.dim() == 4 else ycc.unsqueeze(0), inverse, -(inverse @ offset))
    rgb = rgb.clamp(0, 1) if clip else rgb
    return rgb if y.dim() == 4 else rgb[0]


# --------------------------------------------------------------------------------------------- RGBA


@batched
def rgb_to_rgba(image: Tensor, alpha: float | Tensor = 1.0, backend: str = "auto") -> Tensor:
    """Adds an alpha channel: Tensor[B, 3, H, W] -> Tensor[B, 4, H, W] (straight, not premultiplied).

    Args:
        image: Tensor[B, 3, H, W] in [0, 1].
        alpha: the opacity, a number in [0, 1] or Tensor[B or 1, 1, H, W] in [0, 1].
        backend: "auto" (PyTorch: a channel copy is one pass on planes), "torch" or "opencv"
            (COLOR_RGB2RGBA, then the alpha plane set; a number `alpha` only).
    """
    _check_rgb(image)
    batch, _, height, width = image.shape
    if isinstance(alpha, Tensor):
        check_image(alpha, channels=1, name="alpha", unit_range=True)
        if alpha.shape[-2:] != image.shape[-2:] or (alpha.dim() == 4 and alpha.shape[0] not in (1, batch)):
            raise ShapeError(f"alpha: expected (B or 1, 1, H, W) for an image of shape {tuple(image.shape)}, "
                             f"got {tuple(alpha.shape)}")
        return torch.cat((image, alpha.to(image).expand(batch, 1, height, width)), 1)
    if not 0 <= alpha <= 1:
        raise ShapeError(f"alpha: expected a number in [0, 1] or a tensor, got {alpha!r}")
    if backend != "auto" and use_opencv(image, backend, cv_ok(image)):
        cv2 = cv2_module()

        def set_alpha(out: np.ndarray, _: object) -> None:
            out[3] = alpha

        return opencv_pixels(image, lambda block, dst: cv2.cvtColor(block, cv2.COLOR_RGB2RGBA, dst=dst), 4,
                             finish=set_alpha)
    return torch.cat((image, image.new_full((batch, 1, height, width), alpha)), 1)


@batched
def rgba_to_rgb(image: Tensor, background: float | tuple[float, float, float] | Tensor = 1.0) -> Tensor:
    """Composites RGBA over a background: `rgb * alpha + background * (1 - alpha)` (straight alpha).

    OpenCV's COLOR_RGBA2RGB drops the alpha channel, which equals this only where alpha = 1; a
    transparent pixel's colour is often arbitrary (black in many PNGs), so zrenie composites, over
    white by default as `zrenie.imgproc.io.read_image` does. No `backend`: OpenCV has no compositing.

    Args:
        image: Tensor[B, 4, H, W] in [0, 1].
        background: a gray level, an (r, g, b) triple in [0, 1], or a Tensor broadcastable to
            [B, 3, H, W] (e.g. another image).

    Returns:
        Tensor[B, 3, H, W].
    """
    check_image(image, channels=4, unit_range=True)
    if isinstance(background, Tensor):
        check_image(background if background.dim() >= 3 else background.view(-1, 1, 1), name="background",
                    unit_range=True)
    else:
        background = torch.as_tensor(background, dtype=image.dtype, device=image.device)
        if background.numel() not in (1, 3) or not bool(((background >= 0) & (background <= 1)).all()):
            raise ShapeError(f"background: expected a gray level or an (r, g, b) triple in [0, 1], got "
                             f"{background.tolist()}")
        background = background.view(1, -1, 1, 1)
    try:
        torch.broadcast_shapes(background.shape, (image.shape[0], 3, *image.shape[2:]))
    except RuntimeError:
        raise ShapeError(f"background: shape {tuple(background.shape)} does not broadcast to the image's "
                         f"{(image.shape[0], 3, *image.shape[2:])}") from None
    rgb, alpha = image[:, :3], image[:, 3:]
    return rgb * alpha + background * (1 - alpha)  # exactly rgb where alpha = 1


# -------------------------------------------------------------------------------------------- Bayer

# The colour (0 R, 1 G, 2 B) of each pixel of the 2x2 tile, named from the top-left pixel, row by row.
# OpenCV names a pattern by the second row's second and third pixels: its COLOR_BayerBG2RGB is for
# an RGGB sensor, BayerRG2RGB for BGGR, BayerGB2RGB for GRBG and BayerGR2RGB for GBRG.
BAYER_PATTERNS = {"RGGB": (0, 1, 1, 2), "BGGR": (2, 1, 1, 0), "GRBG": (1, 0, 2, 1), "GBRG": (1, 2, 0, 1)}


@batched
def bayer_to_rgb(image: Tensor, pattern: str = "RGGB", method: str = "bilinear") -> Tensor:
    """Demosaics a Bayer-filtered sensor image: each pixel's two missing colours by bilinear interpolation.

    A pixel keeps its measured colour; the missing green is the mean of the 4 neighbours, a missing
    red or blue the mean of the 2 or 4 nearest pixels of that colour: OpenCV's bilinear
    COLOR_Bayer*2RGB, equal on every interior pixel (to its 8-bit rounding). At the border zrenie
    mirrors the mosaic (reflect-101 keeps the 2x2 pattern), so border pixels keep their measured
    colour too; OpenCV instead copies the result of the next row or column into its outermost ones.
    No `backend`: OpenCV demosaics 8- and 16-bit integers only.

    Args:
        image: Tensor[B, 1, H, W] in [0, 1], at least 2x2.
        pattern: the colours of the top-left 2x2 pixels: "RGGB", "BGGR", "GRBG" or "GBRG".
        method: "bilinear" (the one implemented).

    Returns:
        Tensor[B, 3, H, W] RGB.
    """
    check_image(image, channels=1, min_size=2, unit_range=True)
    if pattern not in BAYER_PATTERNS:
        raise ShapeError(f"pattern: expected one of {', '.join(BAYER_PATTERNS)}, got {pattern!r}")
    if method != "bilinear":
        raise ShapeError(f"method: expected 'bilinear', got {method!r}")
    height, width = image.shape[-2:]
    masks = torch.zeros(3, 2, 2, dtype=image.dtype, device=image.device)
    for position, colour in enumerate(BAYER_PATTERNS[pattern]):
        masks[colour, position // 2, position % 2] = 1
    masks = masks.repeat(1, (height + 1) // 2, (width + 1) // 2)[:, :height, :width]
    planes = F.pad(image * masks, (1, 1, 1, 1), mode="reflect")  # (B, 3, H + 2, W + 2), the samples only
    cross = torch.tensor([[0.0, 1.0, 0.0], [1.0, 4.0, 1.0], [0.0, 1.0, 0.0]]) / 4  # green: the 4 neighbours
    square = torch.tensor([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]]) / 4  # red, blue: 2 or 4 of them
    kernels = torch.stack((square, cross, square)).unsqueeze(1).to(image)
    return F.conv2d(planes, kernels, groups=3)


# Module forms, e.g. RgbToYuv420(chroma="top_left")(image) or BayerToRgb("BGGR")(mosaic).


class RgbToLuv(OpModule):
    op = staticmethod(rgb_to_luv)


class LuvToRgb(OpModule):
    op = staticmethod(luv_to_rgb)


class RgbToYuv(OpModule):
    op = staticmethod(rgb_to_yuv)


class YuvToRgb(OpModule):
    op = staticmethod(yuv_to_rgb)


class RgbToYuv420(OpModule):
    """Module form of `rgb_to_yuv420`; its forward returns the pair (Y, UV)."""

    op = staticmethod(rgb_to_yuv420)


class Yuv420ToRgb(OpModule):
    """Module form of `yuv420_to_rgb`: `Yuv420ToRgb("full")(y, uv)`."""

    op = staticmethod(yuv420_to_rgb)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(None, *args, **kwargs)  # the op takes two planes: check the rest against its signature
        self.args = args

    def forward(self, y: Tensor, uv: Tensor) -> Tensor:  # type: ignore[override]
        return yuv420_to_rgb(y, uv, *self.args, **self.kwargs)


class RgbToRgba(OpModule):
    op = staticmethod(rgb_to_rgba)


class RgbaToRgb(OpModule):
    op = staticmethod(rgba_to_rgb)


class BayerToRgb(OpModule):
    op = staticmethod(bayer_to_rgb)
