import sys

from zrenie.cli import main

sys.exit(main())
