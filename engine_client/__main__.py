"""``python -m engine_client``."""

import sys

from engine_client.cli import main

sys.exit(main())
