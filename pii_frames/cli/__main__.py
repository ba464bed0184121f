"""``python -m pii_frames.cli``: the same as the ``pii-frames`` command."""

import sys

from pii_frames.cli.app import main

sys.exit(main())
