"""The extra CLI verbs of `zrenie detect`: cocoeval, convert and proposals."""

from __future__ import annotations

from zrenie.tasks.detect.cocoeval import COCOEVAL
from zrenie.tasks.detect.convert import CONVERT
from zrenie.tasks.detect.proposals import PROPOSALS

VERBS = {"cocoeval": COCOEVAL, "convert": CONVERT, "proposals": PROPOSALS}
