"""Object detection (course module 5): `zrenie detect train|eval|predict|export|report|cocoeval|convert|proposals`.

The detectors are imported here so that discovery registers them with the task.
"""

from zrenie.tasks.detect import (  # noqa: F401  (register)
    models_centernet, models_localizer, models_ssd, models_torchvision, models_yolo, task,
)
