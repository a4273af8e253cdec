"""``python -m harness``: the same as the ``gmi`` command (:mod:`harness.cli`)."""

import sys

from harness.cli import main

sys.exit(main())
