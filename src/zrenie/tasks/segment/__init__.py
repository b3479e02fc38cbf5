"""Semantic segmentation (course module 4): `zrenie segment train|eval|predict|export|report|study`."""

from zrenie.tasks.segment import models, models_deeplab, models_encoder, models_mobile, task  # noqa: F401  (register)
