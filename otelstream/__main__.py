"""`python -m otelstream`: the same command as `otelstream`."""

import sys

from otelstream.cli import main

sys.exit(main())
