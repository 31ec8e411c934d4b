"""The RecBole side: the only code that drives RecBole training.

``trainer`` (``EarlyStoppingTrainer``, a RecBole ``Trainer`` whose stopping is a rec_es policy), ``run`` (the library
API of one run: ``train``, ``prepare_run_dir``), ``resume`` / ``resume_check`` (continuing from ``last.pth``,
validated before a byte is written), ``capture`` (per-user scores taken from RecBole's evaluator), ``target_ce``
(the cross-entropy at the target item), ``compat`` (RecBole 1.2.1 on today's numpy, torch, SciPy and pandas).
"""
