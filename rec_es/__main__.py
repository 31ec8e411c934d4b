"""``python -m rec_es``: the same as the ``rec-es`` command."""
from rec_es.cli import main

raise SystemExit(main())
