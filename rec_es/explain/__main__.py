"""``python -m rec_es.explain``: the same as ``rec-es explain``."""
import sys

from rec_es.explain.cli import main

sys.exit(main())
