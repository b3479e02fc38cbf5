"""What a classical-ML run learns from: a table (built-in `churn` or a CSV) or image features.

Tables keep their columns (numeric and categorical, for the preprocessing and CatBoost); images become one
feature vector each (`classic.features`: raw pixels, HOG, or a trained zrenie run's penultimate layer).
Either way a run gets train, val and test parts of the same `ClassicData`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from zrenie.errors import ConfigError, DataError

TABLE_SUFFIXES = (".csv", ".tsv", ".txt")


@dataclass
class ClassicData:
    """Features and labels of the three splits.

    Attributes:
        kind: "table" (pandas frames with named columns) or "image" (float arrays [N, D]).
        x: split -> the features (a DataFrame without target and id for tables, an array for images).
        y: split -> labels [N] (class indices for images, the target column's values for tables).
        classes: the class names in label order.
        numeric, categorical: the table's feature columns by type (empty for images).
        ids: split -> the id column's values (tables with an id column), for the submission.
        truth: split -> the generating churn probabilities (built-in `churn` only): the best reachable AUC.
        frame: the whole table (tables only), for the analysis plots.
        target, id_column: the table's label and id columns (id_column None when it has none).
    """

    kind: str
    x: dict[str, Any]
    y: dict[str, np.ndarray]
    classes: list[str]
    numeric: list[str] = field(default_factory=list)
    categorical: list[str] = field(default_factory=list)
    ids: dict[str, np.ndarray] = field(default_factory=dict)
    truth: dict[str, np.ndarray] = field(default_factory=dict)
    frame: Any = None
    target: str = "target"
    id_column: str | None = None

    def counts(self) -> dict[str, int]:
        return {split: len(self.y[split]) for split in ("train", "val", "test")}


def is_table_path(name: str) -> bool:
    return Path(name).suffix.lower() in TABLE_SUFFIXES


def load_data(cfg: Any) -> ClassicData:
    """The run's data: `data.name` is `churn`, a CSV path, or an image dataset (zrenie list datasets)."""
    own = cfg.classic
    if cfg.data.name == "churn":
        return _churn(cfg)
    if is_table_path(cfg.data.name):
        from zrenie.tasks.classic.tabular import read_table

        frame = read_table(cfg.data.name, own.target)
        parts = _split_rows(frame[own.target].to_numpy(), cfg.data.val_fraction, own.test_fraction, cfg.data.seed)
        return _table(frame, parts, own.target, own.id_column)
    return _images(cfg)


def _churn(cfg: Any) -> ClassicData:
    from zrenie.data.builtin.churn import churn_split
    from zrenie.registry import DATASETS

    frame, probs = DATASETS.get("churn")(cfg.data, target="table")
    parts = churn_split(frame["target"].to_numpy(), cfg.data.seed, cfg.classic.test_fraction, cfg.data.val_fraction)
    data = _table(frame, parts, "target", "id")
    data.truth = {split: probs[idx] for split, idx in parts.items()}
    return data


def _split_rows(target: np.ndarray, val_fraction: float, test_fraction: float, seed: int) -> dict[str, np.ndarray]:
    """A stratified train/val/test split of a table's rows (scikit-learn's, twice)."""
    from sklearn.model_selection import train_test_split

    rows = np.arange(len(target))
    _, counts = np.unique(target.astype(str), return_counts=True)
    stratify = target if counts.min() >= 3 else None  # every class needs a row in each part
    rest, test = train_test_split(rows, test_size=test_fraction, random_state=seed, stratify=stratify)
    val_share = val_fraction / (1 - test_fraction)
    train, val = train_test_split(rest, test_size=val_share, random_state=seed,
                                  stratify=None if stratify is None else target[rest])
    return {"train": np.sort(train), "val": np.sort(val), "test": np.sort(test)}


def _table(frame: Any, parts: dict[str, np.ndarray], target: str, id_column: str) -> ClassicData:
    from zrenie.tasks.classic.tabular import split_columns

    id_col = id_column if id_column in frame.columns else None
    numeric, categorical = split_columns(frame, target, id_col)
    labels = frame[target].to_numpy()
    classes = [str(c) for c in np.unique(labels.astype(str))] if labels.dtype == object else \
        [str(c) for c in np.unique(labels)]
    if len(classes) < 2:
        raise DataError(f"{target!r} holds one value ({classes[0]!r}); a classifier needs two classes or more")
    features = numeric + categorical
    return ClassicData(
        kind="table", x={s: frame.iloc[idx][features].reset_index(drop=True) for s, idx in parts.items()},
        y={s: labels[idx] for s, idx in parts.items()}, classes=classes, numeric=numeric, categorical=categorical,
        ids={s: frame[id_col].to_numpy()[idx] for s, idx in parts.items()} if id_col else {}, frame=frame,
        target=target, id_column=id_col)


def _images(cfg: Any) -> ClassicData:
    from zrenie.data.catalog import open_splits

    splits = open_splits(cfg.data, target="class")
    x, y = {}, {}
    for split in ("train", "val", "test"):
        dataset = getattr(splits, split)
        if not hasattr(dataset, "images") and splits.image_size is not None:  # files: as evaluation sees them
            from zrenie.data.transforms import eval_transform

            dataset.transform = eval_transform(splits.image_size)
        images, labels = _stack(dataset, split)
        x[split], y[split] = image_features(images, cfg), labels
    return ClassicData(kind="image", x=x, y=y, classes=list(splits.classes))


def _stack(dataset: Any, split: str) -> tuple[Any, np.ndarray]:
    """An in-memory split's uint8 images and labels as they are; a file split read image by image (one size)."""
    import torch

    if hasattr(dataset, "images") and hasattr(dataset, "targets"):
        return dataset.images, dataset.targets.numpy()
    pairs = [dataset[i] for i in range(len(dataset))]
    shapes = {tuple(image.shape) for image, _ in pairs}
    if len(shapes) > 1:
        raise DataError(f"the {split} images have {len(shapes)} sizes; feature vectors need one (set data.size=)")
    return torch.stack([image for image, _ in pairs]), np.asarray([int(t) for _, t in pairs])


def image_features(images: Any, cfg: Any) -> np.ndarray:
    """`classic.features` of a batch of images: pixels, hog, or embed (a trained run's penultimate layer)."""
    from zrenie.tasks.classic import features as feats

    kind = cfg.classic.features
    if kind == "pixels":
        return feats.pixel_features(images)
    if kind == "hog":
        return feats.hog_features(images)
    if not cfg.classic.embed_run:
        raise ConfigError("config key 'classic.embed_run': features=embed needs a trained run, e.g. "
                          "classic.embed_run=runs/digits")
    import torch

    from zrenie.data.loading import Normalize
    from zrenie.data.transforms import prepare_image
    from zrenie.nn.checkpoint import load_run

    handle = load_run(cfg.classic.embed_run, "cpu")
    meta = handle.preprocess
    floats = [image.float() / 255 if image.dtype == torch.uint8 else image for image in images]
    batch = torch.stack([prepare_image(image, meta) for image in floats])  # as `predict` prepares them
    return feats.model_features(handle.model, Normalize(meta["mean"], meta["std"], torch.device("cpu"))(batch))
