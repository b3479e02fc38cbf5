"""Megapixels per second of zrenie's imgproc ops against OpenCV (and kornia when it is installed).

    python benchmarks/imgproc.py                  # all ops, markdown table on stdout
    python benchmarks/imgproc.py --ops gaussian_blur rgb_to_hsv --repeats 9 --threads 2

Two workloads, both from the bundled photos resized with cv2.INTER_AREA/LINEAR: (a) one 1920x1080
RGB frame, (b) a batch of 64 RGB images of 256x256 (OpenCV loops over them, zrenie takes the
batch). Both sides get float32 in [0, 1], except where OpenCV only has an 8-bit path (equalizeHist,
CLAHE, Canny): it gets uint8 there. Timings alternate between the two libraries and the median
is kept, so a noisy neighbour slows both alike. ratio = zrenie time / OpenCV time (lower is better).

With --threads 1 (the default) both libraries compute on the calling thread, and the clock is that
thread's CPU time (time.thread_time): on a shared machine wall time mostly measures the queue for
a core (on the 2-core runner at load 7, a process got 25% of a core). With more threads, or on
CUDA, the clock is wall time.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

import cv2
import numpy as np
import torch

from zrenie.data.builtin.photos import load_photo
from zrenie.imgproc import adjust, color, edges, filters, histogram, morphology

ELLIPSE5 = morphology.structuring_element("ellipse", 5)
ELLIPSE5_CV = ELLIPSE5.numpy().astype(np.uint8)


def _hsv_cv(x):
    return cv2.cvtColor(x, cv2.COLOR_RGB2HSV)


def _sobel_cv(x):
    return cv2.magnitude(cv2.Sobel(x, cv2.CV_32F, 1, 0), cv2.Sobel(x, cv2.CV_32F, 0, 1))


def _unsharp_cv(x):
    return np.clip(cv2.addWeighted(x, 2.0, cv2.GaussianBlur(x, (9, 9), 1.0), -1.0, 0), 0, 1)


# name -> (zrenie op on (B, 3, H, W), OpenCV op on one (H, W, 3) float32 image, input kind).
# Input kinds: "rgb" float RGB, "hsv"/"hls"/"lab" the converted image, "gray8" uint8 gray for
# OpenCV's 8-bit-only functions (zrenie gets the same gray as float).
CASES: dict[str, tuple[Callable, Callable, str]] = {
    "rgb_to_grayscale": (color.rgb_to_grayscale, lambda x: cv2.cvtColor(x, cv2.COLOR_RGB2GRAY), "rgb"),
    "rgb_to_hsv": (color.rgb_to_hsv, _hsv_cv, "rgb"),
    "hsv_to_rgb": (color.hsv_to_rgb, lambda x: cv2.cvtColor(x, cv2.COLOR_HSV2RGB), "hsv"),
    "rgb_to_hls": (color.rgb_to_hls, lambda x: cv2.cvtColor(x, cv2.COLOR_RGB2HLS), "rgb"),
    "hls_to_rgb": (color.hls_to_rgb, lambda x: cv2.cvtColor(x, cv2.COLOR_HLS2RGB), "hls"),
    "rgb_to_lab": (color.rgb_to_lab, lambda x: cv2.cvtColor(x, cv2.COLOR_RGB2Lab), "rgb"),
    "lab_to_rgb": (color.lab_to_rgb, lambda x: cv2.cvtColor(x, cv2.COLOR_Lab2RGB), "lab"),
    "rgb_to_xyz": (color.rgb_to_xyz, lambda x: cv2.cvtColor(x, cv2.COLOR_RGB2XYZ), "rgb"),
    "rgb_to_ycbcr": (color.rgb_to_ycbcr, lambda x: cv2.cvtColor(x, cv2.COLOR_RGB2YCrCb), "rgb"),
    "adjust_gamma": (lambda x: adjust.adjust_gamma(x, 2.2), lambda x: cv2.pow(x, 2.2), "rgb"),
    "sepia": (adjust.sepia, lambda x: np.clip(cv2.transform(x, np.array(adjust._SEPIA, np.float32)), 0, 1), "rgb"),
    "equalize_hist": (histogram.equalize_hist, cv2.equalizeHist, "gray8"),
    "clahe": (lambda x: histogram.clahe(x, 2.0, 8), lambda x: cv2.createCLAHE(2.0, (8, 8)).apply(x), "gray8"),
    "box_blur": (lambda x: filters.box_blur(x, 5), lambda x: cv2.blur(x, (5, 5)), "rgb"),
    "gaussian_blur": (lambda x: filters.gaussian_blur(x, 2.0), lambda x: cv2.GaussianBlur(x, (17, 17), 2.0), "rgb"),
    "median_blur": (lambda x: filters.median_blur(x, 5), lambda x: cv2.medianBlur(x, 5), "rgb"),
    "bilateral_filter": (lambda x: filters.bilateral_filter(x, 5, 0.1, 2.0),
                         lambda x: cv2.bilateralFilter(x, 5, 0.1, 2.0), "rgb"),
    "sobel": (lambda x: filters.sobel(x, normalized=False), _sobel_cv, "rgb"),
    "laplacian": (lambda x: filters.laplacian(x, 3, normalized=False), lambda x: cv2.Laplacian(x, cv2.CV_32F, ksize=3),
                  "rgb"),
    "unsharp_mask": (lambda x: filters.unsharp_mask(x, 1.0, 1.0), _unsharp_cv, "rgb"),
    "canny": (lambda x: edges.canny(x, 0.2, 0.4, sigma=0), lambda x: cv2.Canny(x, 51, 102, L2gradient=True), "gray8"),
    "erode": (lambda x: morphology.erode(x, 5), lambda x: cv2.erode(x, np.ones((5, 5), np.uint8)), "rgb"),
    "dilate_ellipse": (lambda x: morphology.dilate(x, ELLIPSE5), lambda x: cv2.dilate(x, ELLIPSE5_CV), "rgb"),
    "morphological_gradient": (lambda x: morphology.morphological_gradient(x, 3),
                               lambda x: cv2.morphologyEx(x, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)), "rgb"),
}


def _kornia_ops() -> dict[str, Callable]:
    try:
        import kornia
    except ModuleNotFoundError:
        return {}
    return {
        "rgb_to_grayscale": kornia.color.rgb_to_grayscale, "rgb_to_hsv": kornia.color.rgb_to_hsv,
        "rgb_to_lab": kornia.color.rgb_to_lab, "rgb_to_ycbcr": kornia.color.rgb_to_ycbcr,
        "gaussian_blur": lambda x: kornia.filters.gaussian_blur2d(x, (17, 17), (2.0, 2.0)),
        "box_blur": lambda x: kornia.filters.box_blur(x, (5, 5)),
        "median_blur": lambda x: kornia.filters.median_blur(x, (5, 5)),
        "sobel": lambda x: kornia.filters.sobel(x, normalized=False),
        "canny": lambda x: kornia.filters.canny(x, 0.2, 0.4)[1],
    }


def workloads() -> dict[str, np.ndarray]:
    """name -> uint8 (N, H, W, 3) images."""
    names = ("astronaut", "coffee", "chelsea", "china", "flower")
    photos = [(load_photo(n).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8) for n in names]
    frame = cv2.resize(photos[3], (1920, 1080), interpolation=cv2.INTER_LINEAR)[None]
    batch = np.stack([cv2.resize(photos[i % 5], (256, 256), interpolation=cv2.INTER_AREA) for i in range(64)])
    return {"1920x1080": frame, "64x256x256": batch}


def _inputs(images: np.ndarray, kind: str) -> tuple[list[np.ndarray], torch.Tensor]:
    """(OpenCV inputs, one per image; zrenie's (B, C, H, W) float batch) for an input kind."""
    rgb = images.astype(np.float32) / 255
    if kind == "gray8":
        gray = np.stack([cv2.cvtColor(im, cv2.COLOR_RGB2GRAY) for im in images])
        return list(gray), torch.from_numpy(gray).float().div(255).unsqueeze(1)
    tensor = torch.from_numpy(rgb).permute(0, 3, 1, 2).contiguous()
    if kind == "rgb":
        return list(rgb), tensor
    forward = {"hsv": (color.rgb_to_hsv, cv2.COLOR_RGB2HSV), "hls": (color.rgb_to_hls, cv2.COLOR_RGB2HLS),
               "lab": (color.rgb_to_lab, cv2.COLOR_RGB2Lab)}[kind]
    converted = [cv2.cvtColor(im, forward[1]) for im in rgb]
    return converted, forward[0](tensor)


CLOCK = time.perf_counter


def _time(fn: Callable[[], object], sync: Callable[[], None] = lambda: None) -> float:
    start = CLOCK()
    fn()
    sync()
    return CLOCK() - start


def bench_case(name: str, images: np.ndarray, repeats: int, device: str, kornia_op) -> dict[str, float]:
    ours, theirs, kind = CASES[name]
    cv_inputs, batch = _inputs(images, kind)
    batch = batch.to(device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    run_ours, run_cv = (lambda: ours(batch)), (lambda: [theirs(im) for im in cv_inputs])
    run_kornia = (lambda: kornia_op(batch)) if kornia_op else None
    with torch.inference_mode():
        for fn in filter(None, (run_ours, run_cv, run_kornia)):  # warm-up: caches, lazy inits
            _time(fn, sync)
        times: dict[str, list[float]] = {"zrenie": [], "opencv": [], "kornia": []}
        for _ in range(repeats):  # alternate, so background load hits both alike
            times["zrenie"].append(_time(run_ours, sync))
            times["opencv"].append(_time(run_cv))
            if run_kornia:
                times["kornia"].append(_time(run_kornia, sync))
    return {k: statistics.median(v) for k, v in times.items() if v}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ops", nargs="*", default=list(CASES), choices=list(CASES))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    global CLOCK
    cpu_clock = args.threads == 1 and args.device == "cpu"
    CLOCK = time.thread_time if cpu_clock else time.perf_counter
    kornia_ops = _kornia_ops()
    print(f"torch {torch.__version__}, OpenCV {cv2.__version__}, {args.threads} thread(s), zrenie on {args.device}, "
          f"kornia {'on' if kornia_ops else 'not installed'}; OpenCV on CPU; "
          f"clock: {'thread CPU time' if cpu_clock else 'wall time'}, median of {args.repeats}\n")
    header = "| op | workload | zrenie MP/s | OpenCV MP/s | ratio |" + (" kornia MP/s |" if kornia_ops else "")
    print(header + "\n|" + "---|" * (header.count("|") - 1))
    for name in args.ops:
        for workload, images in workloads().items():
            megapixels = images.shape[0] * images.shape[1] * images.shape[2] / 1e6
            t = bench_case(name, images, args.repeats, args.device, kornia_ops.get(name))
            row = f"| {name} | {workload} | {megapixels / t['zrenie']:.1f} | {megapixels / t['opencv']:.1f} | " \
                  f"{t['zrenie'] / t['opencv']:.2f} |"
            if kornia_ops:
                row += f" {megapixels / t['kornia']:.1f} |" if "kornia" in t else " - |"
            print(row, flush=True)


if __name__ == "__main__":
    main()
