"""Ray: ``rec-es tune``'s search and the workers ``rec-es compare`` and ``tune`` share.

``search`` (a Ray Tune search with a rec_es policy in every trial), ``space`` (RecBole's hyper-parameter file
format, parsed without ``eval``), ``workers`` (what one training worker does), ``cluster`` (connecting to Ray,
training runs as Ray tasks whose files come back as bytes).
"""
