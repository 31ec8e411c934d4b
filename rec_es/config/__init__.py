"""RecBole property files as rec_es reads them, before anything trains.

``properties`` (files merged in RecBole's order, ``--set`` overrides, the policy validated: ``load_config`` ->
``RunConfig``), ``protocol`` (what RecBole's ``eval_args`` mean for rec_es), ``datasets`` (where a run's data comes
from), ``shadowing`` (settings overridden without a word), ``lint`` (``rec-es check``'s findings).
"""
