"""`python -m bench.soak [--quick]`: see bench/soak/run.py."""

import sys

from bench.soak.run import main

sys.exit(main())
