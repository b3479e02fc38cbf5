"""Semantic segmentation (course module 4): `zrenie segment train|eval|predict|export|report`."""

from zrenie.tasks.segment import models, models_deeplab, task  # noqa: F401  (register the models and the task)
