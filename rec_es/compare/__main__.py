"""``python -m rec_es.compare``: the same as ``rec-es compare``."""
import sys

from rec_es.compare.cli import main

sys.exit(main())
