"""zrenie: deep learning for computer vision, offline, tested against references.

    import zrenie
    run = zrenie.train("classify", data="digits", model="simple_cnn", epochs=5, out="runs/digits")
    zrenie.evaluate("runs/digits")
    zrenie.predict("runs/digits", ["digit.png"])
"""

from zrenie.api import evaluate, export, predict, report, train
from zrenie.data.catalog import list_datasets, load_dataset
from zrenie.errors import ZrenieError
from zrenie.models import build_model, list_models

__version__ = "0.1.0"
__all__ = ["train", "evaluate", "predict", "export", "report", "build_model", "list_models", "load_dataset", "list_datasets",
           "ZrenieError", "__version__"]
