"""Classical image processing in PyTorch: batched on CPU or GPU, differentiable where the maths allows.

Every op takes float `(C, H, W)` or `(B, C, H, W)` in [0, 1] and returns the same batch shape.
"""

from zrenie.imgproc.adjust import (
    AdjustBrightness, AdjustContrast, AdjustGamma, AdjustHue, AdjustSaturation, HueShift, Invert, Sepia,
    WhiteBalanceGrayWorld, adjust_brightness, adjust_contrast, adjust_gamma, adjust_hue, adjust_saturation,
    hue_shift, invert, sepia, white_balance_gray_world,
)
from zrenie.imgproc.color import (
    BgrToRgb, GrayscaleToRgb, HlsToRgb, HsvToRgb, LabToRgb, LinearRgbToRgb, RgbToBgr, RgbToGrayscale, RgbToHls,
    RgbToHsv, RgbToLab, RgbToLinearRgb, RgbToXyz, RgbToYcbcr, XyzToRgb, YcbcrToRgb, bgr_to_rgb, grayscale_to_rgb,
    hls_to_rgb, hsv_to_rgb, lab_to_rgb, linear_rgb_to_rgb, rgb_to_bgr, rgb_to_grayscale, rgb_to_hls, rgb_to_hsv,
    rgb_to_lab, rgb_to_linear_rgb, rgb_to_xyz, rgb_to_ycbcr, xyz_to_rgb, ycbcr_to_rgb,
)
from zrenie.imgproc.color_extra import (
    BAYER_PATTERNS, BayerToRgb, LuvToRgb, RgbaToRgb, RgbToLuv, RgbToRgba, RgbToYuv, RgbToYuv420, Yuv420ToRgb, YuvToRgb,
    bayer_to_rgb, luv_to_rgb, rgb_to_luv, rgb_to_rgba, rgb_to_yuv, rgb_to_yuv420, rgba_to_rgb, yuv420_to_rgb,
    yuv_to_rgb,
)
from zrenie.imgproc.filters import (
    BilateralFilter, BoxBlur, Filter2d, Filter2dSeparable, GaussianBlur, Laplacian, MedianBlur, Scharr, Sobel,
    SpatialGradient, UnsharpMask, bilateral_filter, box_blur, filter2d, filter2d_separable, gaussian_blur,
    gaussian_kernel1d, gaussian_kernel_size, laplacian, median_blur, scharr, sobel, spatial_gradient, unsharp_mask,
)
from zrenie.imgproc.histogram import (
    Clahe, EqualizeHist, QuantizeColors, clahe, equalize_hist, image_histogram, quantize_colors,
)
from zrenie.imgproc.edges import Canny, canny, hysteresis
from zrenie.imgproc.morphology import (
    BlackHat, Closing, Dilate, Erode, MorphologicalGradient, Opening, TopHat, black_hat, closing, dilate, erode,
    morphological_gradient, opening, structuring_element, top_hat,
)
