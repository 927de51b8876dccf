"""`python -m mnistlab.cli`: the same as the `mnistlab` console script."""

import sys

from mnistlab.cli import main

sys.exit(main())
