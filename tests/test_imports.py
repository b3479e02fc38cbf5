"""Starting zrenie stays light: listing names or starting a run imports neither matplotlib nor torchvision
(about 0.5 s and 1.2 s of import time on a laptop CPU); the modules that draw or transform import them on use."""

import subprocess
import sys


def test_listing_imports_no_plotting_or_torchvision():
    code = ("import sys, zrenie; zrenie.list_models(); zrenie.list_datasets(); "
            "from zrenie.tasks import list_tasks; list_tasks(); "
            "print(sorted(m for m in ('matplotlib', 'torchvision') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
