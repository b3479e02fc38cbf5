"""Megapixels per second of zrenie's imgproc ops against OpenCV (and kornia when it is installed).

    python benchmarks/imgproc.py                  # all ops, markdown tables on stdout
    python benchmarks/imgproc.py --ops gaussian_blur rgb_to_hsv --repeats 9 --threads 2

Two CPU workloads, both from the bundled photos resized with cv2.INTER_AREA/LINEAR: (a) one
1920x1080 RGB frame, (b) a batch of 64 RGB images of 256x256 (OpenCV loops over them, zrenie and
kornia take the batch). All get float32 in [0, 1], except where OpenCV only has an 8-bit path
(equalizeHist, CLAHE, Canny): OpenCV gets uint8 there, zrenie and kornia the same gray as float.
zrenie runs twice: with its default backend ("auto": OpenCV for CPU tensors that need no
gradient) and with backend="torch" (its PyTorch code). An op without a `backend` keyword runs
its one path, reported in both columns (marked *). Timings alternate between the libraries and
the median is kept, so a noisy neighbour slows all alike. Ratios are zrenie's time over OpenCV's
(lower is better); the target is auto / OpenCV <= 1.3 for every op. zrenie and kornia get NCHW
tensors; with --channels-last they get channels_last ones instead, which hold the (H, W, C) pixels
OpenCV reads (what torch.from_numpy(hwc).permute(2, 0, 1) makes of an image OpenCV loaded).

With --threads 1 (the default) every library computes on the calling thread, and the clock is
that thread's CPU time (time.thread_time): on a shared machine wall time mostly measures the queue
for a core (on the 2-core runner at load 7, a process got 25% of a core). With more threads the
clock is wall time.

When CUDA is available, a second table times zrenie's PyTorch path on a 64x3x256x256 batch on the
GPU against OpenCV looping over the 64 images on the CPU (wall time both; target: >= 10x).
"""

from __future__ import annotations

import argparse
import inspect
import statistics
import time
from functools import partial
from typing import Callable

import cv2
import numpy as np
import torch

from zrenie.data.builtin.photos import load_photo
from zrenie.imgproc import adjust, color, edges, filters, histogram, morphology

ELLIPSE5 = morphology.structuring_element("ellipse", 5)
ELLIPSE5_CV = ELLIPSE5.numpy().astype(np.uint8)
TARGET_CPU, TARGET_GPU = 1.3, 10.0


def _sobel_cv(x):
    return cv2.magnitude(cv2.Sobel(x, cv2.CV_32F, 1, 0), cv2.Sobel(x, cv2.CV_32F, 0, 1))


def _unsharp_cv(x):
    return np.clip(cv2.addWeighted(x, 2.0, cv2.GaussianBlur(x, (9, 9), 1.0), -1.0, 0), 0, 1)


def _cvt(code: int) -> Callable[[np.ndarray], np.ndarray]:
    return lambda x: cv2.cvtColor(x, code)


# name -> (zrenie op on (B, C, H, W), OpenCV op on one (H, W, C) image, input kind).
# Input kinds: "rgb" float RGB, "hsv"/"hls"/"lab" the converted image, "gray8" uint8 gray for
# OpenCV's 8-bit-only functions (zrenie and kornia get the same gray as float).
CASES: dict[str, tuple[Callable, Callable, str]] = {
    "rgb_to_grayscale": (color.rgb_to_grayscale, _cvt(cv2.COLOR_RGB2GRAY), "rgb"),
    "rgb_to_hsv": (color.rgb_to_hsv, _cvt(cv2.COLOR_RGB2HSV), "rgb"),
    "hsv_to_rgb": (color.hsv_to_rgb, _cvt(cv2.COLOR_HSV2RGB), "hsv"),
    "rgb_to_hls": (color.rgb_to_hls, _cvt(cv2.COLOR_RGB2HLS), "rgb"),
    "hls_to_rgb": (color.hls_to_rgb, _cvt(cv2.COLOR_HLS2RGB), "hls"),
    "rgb_to_lab": (color.rgb_to_lab, _cvt(cv2.COLOR_RGB2Lab), "rgb"),
    "lab_to_rgb": (color.lab_to_rgb, _cvt(cv2.COLOR_Lab2RGB), "lab"),
    "rgb_to_xyz": (color.rgb_to_xyz, _cvt(cv2.COLOR_RGB2XYZ), "rgb"),
    "rgb_to_ycbcr": (color.rgb_to_ycbcr, _cvt(cv2.COLOR_RGB2YCrCb), "rgb"),
    "adjust_gamma": (partial(adjust.adjust_gamma, gamma=2.2), lambda x: cv2.pow(x, 2.2), "rgb"),
    "sepia": (adjust.sepia, lambda x: np.clip(cv2.transform(x, np.array(adjust._SEPIA, np.float32)), 0, 1), "rgb"),
    "equalize_hist": (histogram.equalize_hist, cv2.equalizeHist, "gray8"),
    "clahe": (partial(histogram.clahe, clip_limit=2.0, grid=8), lambda x: cv2.createCLAHE(2.0, (8, 8)).apply(x),
              "gray8"),
    "box_blur": (partial(filters.box_blur, kernel_size=5), lambda x: cv2.blur(x, (5, 5)), "rgb"),
    "gaussian_blur": (partial(filters.gaussian_blur, sigma=2.0), lambda x: cv2.GaussianBlur(x, (17, 17), 2.0), "rgb"),
    "median_blur": (partial(filters.median_blur, kernel_size=5), lambda x: cv2.medianBlur(x, 5), "rgb"),
    "bilateral_filter": (partial(filters.bilateral_filter, diameter=5, sigma_color=0.1, sigma_space=2.0),
                         lambda x: cv2.bilateralFilter(x, 5, 0.1, 2.0), "rgb"),
    "sobel": (partial(filters.sobel, normalized=False), _sobel_cv, "rgb"),
    "laplacian": (partial(filters.laplacian, kernel_size=3, normalized=False),
                  lambda x: cv2.Laplacian(x, cv2.CV_32F, ksize=3), "rgb"),
    "unsharp_mask": (partial(filters.unsharp_mask, sigma=1.0, amount=1.0), _unsharp_cv, "rgb"),
    "canny": (partial(edges.canny, low=0.2, high=0.4, sigma=0), lambda x: cv2.Canny(x, 51, 102, L2gradient=True),
              "gray8"),
    "erode": (partial(morphology.erode, kernel=5), lambda x: cv2.erode(x, np.ones((5, 5), np.uint8)), "rgb"),
    "dilate_ellipse": (partial(morphology.dilate, kernel=ELLIPSE5), lambda x: cv2.dilate(x, ELLIPSE5_CV), "rgb"),
    "morphological_gradient": (partial(morphology.morphological_gradient, kernel=3),
                               lambda x: cv2.morphologyEx(x, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)), "rgb"),
}


def _kornia_ops() -> dict[str, Callable]:
    """kornia's op for each case where it has one (same job, its own conventions), or {} without kornia."""
    try:
        import kornia
    except ModuleNotFoundError:
        return {}
    kc, kf, ke, km = kornia.color, kornia.filters, kornia.enhance, kornia.morphology
    ones3, ones5 = torch.ones(3, 3), torch.ones(5, 5)
    return {
        "rgb_to_grayscale": kc.rgb_to_grayscale, "rgb_to_hsv": kc.rgb_to_hsv, "hsv_to_rgb": kc.hsv_to_rgb,
        "rgb_to_hls": kc.rgb_to_hls, "hls_to_rgb": kc.hls_to_rgb, "rgb_to_lab": kc.rgb_to_lab,
        "lab_to_rgb": kc.lab_to_rgb, "rgb_to_xyz": lambda x: kc.rgb_to_xyz(kc.rgb_to_linear_rgb(x)),
        "rgb_to_ycbcr": kc.rgb_to_ycbcr, "adjust_gamma": lambda x: ke.adjust_gamma(x, 2.2),
        "sepia": lambda x: kc.sepia(x, rescale=False).clamp(0, 1), "equalize_hist": ke.equalize,
        "clahe": lambda x: ke.equalize_clahe(x, 2.0, (8, 8)),
        "box_blur": lambda x: kf.box_blur(x, (5, 5)),
        "gaussian_blur": lambda x: kf.gaussian_blur2d(x, (17, 17), (2.0, 2.0)),
        "median_blur": lambda x: kf.median_blur(x, (5, 5)),
        "bilateral_filter": lambda x: kf.bilateral_blur(x, 5, 0.1, (2.0, 2.0)),
        "sobel": lambda x: kf.sobel(x, normalized=False), "laplacian": lambda x: kf.laplacian(x, 3, normalized=False),
        "unsharp_mask": lambda x: kf.unsharp_mask(x, (9, 9), (1.0, 1.0)).clamp(0, 1),
        "canny": lambda x: kf.canny(x, 0.2, 0.4)[1],
        "erode": lambda x: km.erosion(x, ones5), "dilate_ellipse": lambda x: km.dilation(x, ELLIPSE5),
        "morphological_gradient": lambda x: km.gradient(x, ones3),
    }


def takes_backend(op: Callable) -> bool:
    """Whether a zrenie op has the `backend` keyword (ops gain it one by one)."""
    try:
        return "backend" in inspect.signature(op).parameters
    except (TypeError, ValueError):
        return False


def workloads() -> dict[str, np.ndarray]:
    """name -> uint8 (N, H, W, 3) images."""
    names = ("astronaut", "coffee", "chelsea", "china", "flower")
    photos = [(load_photo(n).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8) for n in names]
    frame = cv2.resize(photos[3], (1920, 1080), interpolation=cv2.INTER_LINEAR)[None]
    batch = np.stack([cv2.resize(photos[i % 5], (256, 256), interpolation=cv2.INTER_AREA) for i in range(64)])
    return {"1920x1080": frame, "64x256x256": batch}


def _inputs(images: np.ndarray, kind: str) -> tuple[list[np.ndarray], torch.Tensor]:
    """(OpenCV inputs, one per image; the (B, C, H, W) float batch for zrenie and kornia) for an input kind."""
    rgb = images.astype(np.float32) / 255
    if kind == "gray8":
        gray = np.stack([cv2.cvtColor(im, cv2.COLOR_RGB2GRAY) for im in images])
        return list(gray), torch.from_numpy(gray).float().div(255).unsqueeze(1)
    tensor = torch.from_numpy(rgb).permute(0, 3, 1, 2).contiguous(memory_format=LAYOUT)
    if kind == "rgb":
        return list(rgb), tensor
    forward = {"hsv": (color.rgb_to_hsv, cv2.COLOR_RGB2HSV), "hls": (color.rgb_to_hls, cv2.COLOR_RGB2HLS),
               "lab": (color.rgb_to_lab, cv2.COLOR_RGB2Lab)}[kind]
    converted = [cv2.cvtColor(im, forward[1]) for im in rgb]
    return converted, forward[0](tensor).contiguous(memory_format=LAYOUT)


CLOCK = time.perf_counter
# The memory layout of zrenie's and kornia's RGB inputs: NCHW planes, or with --channels-last the
# (H, W, C) pixels OpenCV gets, as torch.from_numpy(hwc).permute(2, 0, 1) views an image it loaded.
LAYOUT = torch.contiguous_format


def _time(fn: Callable[[], object], sync: Callable[[], None] = lambda: None) -> float:
    start = CLOCK()
    fn()
    sync()
    return CLOCK() - start


def _too_slow(op: Callable, batch: torch.Tensor, limit: float) -> bool:
    """Whether `op` on the whole batch would take over `limit` seconds, judged from one 256x256 tile."""
    tile = batch[:1, :, :256, :256]
    return _time(lambda: op(tile)) * batch.numel() / tile.numel() > limit


def bench_case(name: str, images: np.ndarray, repeats: int, kornia_op, kornia_limit: float) -> dict[str, float]:
    """Median seconds per library ("opencv", "auto", "torch", "kornia") for one case on one workload.

    "torch" is absent when the op has no backend keyword (auto is then the only path); "kornia" is
    absent without a kornia op, and infinite when its warm-up run took longer than `kornia_limit`.
    """
    ours, theirs, kind = CASES[name]
    cv_inputs, batch = _inputs(images, kind)
    runs: dict[str, Callable[[], object]] = {"opencv": lambda: [theirs(im) for im in cv_inputs],
                                             "auto": lambda: ours(batch)}
    if takes_backend(ours):
        runs["torch"] = lambda: ours(batch, backend="torch")
    if kornia_op is not None:
        runs["kornia"] = lambda: kornia_op(batch)
    times: dict[str, list[float]] = {key: [] for key in runs}
    with torch.inference_mode():
        if kornia_op is not None and _too_slow(kornia_op, batch, kornia_limit):
            del runs["kornia"]
            times["kornia"] = [float("inf")]
        for key, fn in list(runs.items()):  # warm-up: caches, lazy imports
            if _time(fn) > kornia_limit and key == "kornia":
                del runs[key]
                times[key] = [float("inf")]
        for _ in range(repeats):  # alternate, so background load hits every library alike
            for key, fn in runs.items():
                times[key].append(_time(fn))
    return {key: statistics.median(values) for key, values in times.items()}


def _rate(megapixels: float, seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{megapixels / seconds:.1f}" if seconds != float("inf") else "slow"


def cpu_table(ops: list[str], repeats: int, kornia_ops: dict[str, Callable], kornia_limit: float) -> list[str]:
    """Prints the CPU table row by row; returns one line per op whose auto / OpenCV exceeds the target."""
    header = "| op | workload | OpenCV MP/s | auto MP/s | torch MP/s | auto / OpenCV | torch / OpenCV |"
    header += " kornia MP/s |" if kornia_ops else ""
    print(header + "\n|" + "---|" * (header.count("|") - 1))
    misses: dict[str, list[str]] = {}
    for name in ops:
        for workload, images in workloads().items():
            megapixels = images.shape[0] * images.shape[1] * images.shape[2] / 1e6
            t = bench_case(name, images, repeats, kornia_ops.get(name), kornia_limit)
            star = "" if "torch" in t else "*"
            torch_time = t.get("torch", t["auto"])
            auto_ratio, torch_ratio = t["auto"] / t["opencv"], torch_time / t["opencv"]
            row = (f"| {name} | {workload} | {megapixels / t['opencv']:.1f} | {megapixels / t['auto']:.1f}{star} | "
                   f"{megapixels / torch_time:.1f}{star} | {auto_ratio:.2f} | {torch_ratio:.2f} |")
            if kornia_ops:
                row += f" {_rate(megapixels, t.get('kornia'))} |"
            print(row, flush=True)
            if auto_ratio > TARGET_CPU:
                misses.setdefault(name, []).append(f"{auto_ratio:.2f}x on {workload}")
    return [f"{name}: auto / OpenCV = {', '.join(found)} (target <= {TARGET_CPU})" for name, found in misses.items()]


def gpu_table(ops: list[str], repeats: int) -> None:
    """zrenie's PyTorch path on a 64x3x256x256 CUDA batch against OpenCV on the CPU, wall time both."""
    images = workloads()["64x256x256"]
    print(f"\nGPU: {torch.cuda.get_device_name()}; zrenie backend='torch' on CUDA vs OpenCV looping over 64 images "
          f"on the CPU ({cv2.getNumThreads()} thread(s)); wall time, median of {repeats}\n")
    print("| op | zrenie GPU ms | OpenCV CPU ms | speed-up |\n|---|---|---|---|")
    global CLOCK
    clock, CLOCK = CLOCK, time.perf_counter
    for name in ops:
        ours, theirs, kind = CASES[name]
        cv_inputs, batch = _inputs(images, kind)
        batch = batch.cuda()
        run_ours = (lambda: ours(batch, backend="torch")) if takes_backend(ours) else (lambda: ours(batch))
        run_cv = lambda: [theirs(im) for im in cv_inputs]  # noqa: E731
        times: dict[str, list[float]] = {"gpu": [], "cpu": []}
        with torch.inference_mode():
            _time(run_ours, torch.cuda.synchronize)  # warm-up: kernels, caches
            _time(run_cv)
            for _ in range(repeats):
                times["gpu"].append(_time(run_ours, torch.cuda.synchronize))
                times["cpu"].append(_time(run_cv))
        gpu, cpu = statistics.median(times["gpu"]), statistics.median(times["cpu"])
        flag = "" if cpu / gpu >= TARGET_GPU else f" (below {TARGET_GPU:.0f}x)"
        print(f"| {name} | {gpu * 1e3:.2f} | {cpu * 1e3:.1f} | {cpu / gpu:.1f}x{flag} |", flush=True)
    CLOCK = clock


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ops", nargs="*", default=list(CASES), choices=list(CASES))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--kornia-limit", type=float, default=5.0,
                        help="seconds: a kornia op that would take longer than this per run is reported as 'slow'")
    parser.add_argument("--no-gpu", action="store_true", help="skip the CUDA table even when a GPU is present")
    parser.add_argument("--gpu-only", action="store_true", help="skip the CPU table, run only the CUDA one")
    parser.add_argument("--channels-last", action="store_true",
                        help="give zrenie and kornia channels_last tensors (OpenCV's (H, W, C) memory) instead of NCHW")
    args = parser.parse_args()
    global LAYOUT
    LAYOUT = torch.channels_last if args.channels_last else torch.contiguous_format
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    global CLOCK
    cpu_clock = args.threads == 1
    CLOCK = time.thread_time if cpu_clock else time.perf_counter
    kornia_ops = _kornia_ops()
    kornia_version = __import__("kornia").__version__ if kornia_ops else "not installed"
    print(f"torch {torch.__version__}, OpenCV {cv2.__version__}, kornia {kornia_version}, {args.threads} thread(s), "
          f"CPU; clock: {'thread CPU time' if cpu_clock else 'wall time'}, median of {args.repeats}; zrenie's and "
          f"kornia's RGB inputs {'channels_last' if args.channels_last else 'NCHW-contiguous'}\n")
    if not args.gpu_only:
        misses = cpu_table(args.ops, args.repeats, kornia_ops, args.kornia_limit)
        if not all(takes_backend(CASES[name][0]) for name in args.ops):
            print("\n* no backend keyword yet: both zrenie columns ran the op's one path")
        print("\n" + ("\n".join(misses) if misses else f"every op within {TARGET_CPU}x of OpenCV (auto)"))
    if torch.cuda.is_available() and not args.no_gpu:
        gpu_table(args.ops, args.repeats)
    else:
        print("\nGPU table: no CUDA device here (not measured)")


if __name__ == "__main__":
    main()
