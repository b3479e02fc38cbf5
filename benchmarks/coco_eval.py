"""zrenie's COCO evaluator against pycocotools, and zrenie's NMS against torchvision's, in the same run.

COCO: `--images` generated images (default 5,000; 10 classes, 0-8 objects each of 3-120 px, 7% crowd,
20% without objects; detections jittered around the truth, 15% mislabelled, 20% duplicated, plus up to 4
spurious ones per image, scores with ties). Both sides start from the same Python objects (a COCO
instances dict and a results list) and end with the 12 summary numbers: pycocotools' time is COCO index +
loadRes + evaluate + accumulate + summarize, zrenie's is `evaluate_coco`. The two sides alternate who goes
first over `--rounds`; the medians and their ratio are printed, and the 12 numbers are checked equal.
Target: >= 4x.

NMS: `--boxes` random boxes (default 1,000 and 10,000) in a 640x640 image, sides 8-128 px, random
scores; `zrenie.ops.nms` against `torchvision.ops.nms` at IoU 0.5, median of `--repeats`, results
checked equal.

    python benchmarks/coco_eval.py [--images 5000] [--rounds 3] [--boxes 1000 10000] [--repeats 7] [--threads 1]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import statistics
import time

import numpy as np
import torch
import torchvision
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from zrenie import ops
from zrenie.tasks.detect.cocoeval import evaluate_coco

TARGET = 4.0


def generate(n_images: int, n_classes: int = 10, seed: int = 0, size: int = 640) -> tuple[dict, list[dict]]:
    """A COCO instances dict and a results list (see the module docstring)."""
    rng = np.random.default_rng(seed)
    images, anns, dets = [], [], []
    for image_id in range(1, n_images + 1):
        images.append({"id": image_id, "height": size, "width": size})
        for _ in range(0 if rng.random() < 0.2 else int(rng.integers(1, 9))):
            side = float(np.exp(rng.uniform(np.log(3), np.log(120))))
            w, h = side * rng.uniform(0.6, 1.4), side * rng.uniform(0.6, 1.4)
            box = [rng.uniform(0, size - w), rng.uniform(0, size - h), w, h]
            category = int(rng.integers(1, n_classes + 1))
            anns.append({"id": len(anns) + 1, "image_id": image_id, "category_id": category, "bbox": box,
                         "area": w * h, "iscrowd": int(rng.random() < 0.07)})
            for _ in range(int(rng.choice([0, 1, 1, 1, 2, 3]))):
                jitter = rng.normal(0, 0.12 * side, 4)
                found = [box[0] + jitter[0], box[1] + jitter[1], max(0.5, w + jitter[2]), max(0.5, h + jitter[3])]
                label = category if rng.random() < 0.85 else int(rng.integers(1, n_classes + 1))
                dets.append({"image_id": image_id, "category_id": label, "bbox": found,
                             "score": round(float(rng.random()), 2)})
                if rng.random() < 0.2:
                    dets.append(dict(dets[-1]))
        for _ in range(int(rng.integers(0, 5))):
            side = float(np.exp(rng.uniform(np.log(3), np.log(120))))
            dets.append({"image_id": image_id, "category_id": int(rng.integers(1, n_classes + 1)),
                         "bbox": [rng.uniform(0, size - side), rng.uniform(0, size - side), side, side],
                         "score": round(float(rng.random()), 2)})
    categories = [{"id": c + 1, "name": f"class{c}"} for c in range(n_classes)]
    return {"images": images, "annotations": anns, "categories": categories}, dets


def run_pycocotools(gt: dict, dt: list[dict]) -> np.ndarray:
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = gt
        coco.createIndex()
        evaluator = COCOeval(coco, coco.loadRes(dt), "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return evaluator.stats


def time_coco(n_images: int, rounds: int) -> None:
    gt, dt = generate(n_images)
    print(f"COCO bbox evaluation: {n_images} images, {len(gt['annotations'])} objects, {len(dt)} detections")
    times: dict[str, list[float]] = {"pycocotools": [], "zrenie": []}
    stats = {}
    for r in range(rounds):
        sides = ["pycocotools", "zrenie"] if r % 2 == 0 else ["zrenie", "pycocotools"]
        for side in sides:
            gt_copy, dt_copy = copy.deepcopy(gt), copy.deepcopy(dt)  # loadRes writes into its input
            start = time.perf_counter()
            stats[side] = (run_pycocotools(gt_copy, dt_copy) if side == "pycocotools"
                           else np.asarray(evaluate_coco(gt_copy, dt_copy).stats))
            times[side].append(time.perf_counter() - start)
    gap = float(np.abs(stats["zrenie"] - stats["pycocotools"]).max())
    slow, fast = statistics.median(times["pycocotools"]), statistics.median(times["zrenie"])
    print("| side | median s | runs (s) |\n|---|---|---|")
    for side in times:
        print(f"| {side} | {statistics.median(times[side]):.3f} | {', '.join(f'{t:.3f}' for t in times[side])} |")
    verdict = "meets" if slow / fast >= TARGET else "below"
    print(f"speed-up {slow / fast:.1f}x ({verdict} the {TARGET:.0f}x target); largest difference of the 12 numbers: "
          f"{gap:.1e}")


def random_boxes(n: int, seed: int = 0, size: float = 640.0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    wh = 8 + torch.rand(n, 2, generator=g) * 120
    xy = torch.rand(n, 2, generator=g) * (size - wh)
    return torch.cat([xy, xy + wh], 1), torch.rand(n, generator=g)


def time_nms(counts: list[int], repeats: int) -> None:
    print("\n| boxes | zrenie nms (ms) | torchvision nms (ms) | ratio zrenie / torchvision | kept |")
    print("|---|---|---|---|---|")
    for n in counts:
        boxes, scores = random_boxes(n)
        times: dict[str, list[float]] = {"zrenie": [], "torchvision": []}
        kept = {}
        for r in range(repeats + 1):  # the first round warms both up
            for side, fn in (("zrenie", ops.nms), ("torchvision", torchvision.ops.nms))[:: 1 if r % 2 else -1]:
                start = time.perf_counter()
                kept[side] = fn(boxes, scores, 0.5)
                if r:
                    times[side].append(time.perf_counter() - start)
        if not torch.equal(kept["zrenie"], kept["torchvision"]):
            raise SystemExit(f"nms differs from torchvision's at {n} boxes")
        ours, theirs = statistics.median(times["zrenie"]), statistics.median(times["torchvision"])
        print(f"| {n:,} | {ours * 1e3:.2f} | {theirs * 1e3:.2f} | {ours / theirs:.2f} | {len(kept['zrenie']):,} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--boxes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1: less noise)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, torchvision {torchvision.__version__}, {args.threads} thread(s)")
    if args.images:
        time_coco(args.images, args.rounds)
    time_nms(args.boxes, args.repeats)


if __name__ == "__main__":
    main()
