"""Time to accuracy on the built-in digits: zrenie's CNN recipe beside scikit-learn's SVC.

Both use the same fixed stratified split (zrenie's `digits` test split; SVC trains on train+val,
as the CNN sees val only to pick best.pt). Reports test accuracy and wall-clock training time of
each; the target is >= 98.5% test accuracy within 30 s of training on a 2-core CPU.

    python benchmarks/digits_time_to_accuracy.py [--seeds 0 1 2] [--recipe recipes/digits_cnn.yaml]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import zrenie
from zrenie.config import DataConfig
from zrenie.data.catalog import open_splits


def svc_reference() -> tuple[float, float]:
    """(test accuracy, seconds) of SVC(gamma=0.001, C=10) on the raw 8x8 pixels."""
    from sklearn.svm import SVC

    splits = open_splits(DataConfig(name="digits", size=None))

    def xy(ds):
        return ds.images.reshape(len(ds), -1).float().numpy() / 255 * 16, ds.targets.numpy()

    x_train, y_train = map(np.concatenate, zip(xy(splits.train), xy(splits.val)))
    x_test, y_test = xy(splits.test)
    start = time.perf_counter()
    clf = SVC(gamma=0.001, C=10).fit(x_train, y_train)
    seconds = time.perf_counter() - start
    return float((clf.predict(x_test) == y_test).mean()), seconds


def zrenie_run(recipe: str, seed: int, out: Path) -> tuple[float, float]:
    """(test accuracy, seconds of training including per-epoch validation and checkpoints)."""
    start = time.perf_counter()
    result = zrenie.train("classify", recipe=recipe, seed=seed, out=str(out), overwrite=True, progress=False,
                          tensorboard=False, report=False)
    seconds = time.perf_counter() - start
    return result["test"]["acc1"], seconds


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--recipe", default="recipes/digits_cnn.yaml")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = p.parse_args()
    svc_acc, svc_s = svc_reference()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            rows.append((seed, *zrenie_run(args.recipe, seed, Path(tmp) / f"s{seed}")))
    print(f"torch threads {torch.get_num_threads()}; recipe {args.recipe}; test split of 359 images")
    print("| model | seed | test acc | train time (s) |\n|---|---|---|---|")
    for seed, acc, s in rows:
        print(f"| zrenie simple_cnn | {seed} | {acc:.4f} | {s:.1f} |")
    print(f"| scikit-learn SVC(gamma=0.001, C=10) | - | {svc_acc:.4f} | {svc_s:.2f} |")
    accs = [a for _, a, _ in rows]
    print(f"zrenie mean test acc {np.mean(accs):.4f} (min {min(accs):.4f}), "
          f"max time {max(s for *_, s in rows):.1f} s; SVC {svc_acc:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
