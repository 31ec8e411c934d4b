"""The former single module of ``rec-es explain``; the code is now the ``rec_es.explain`` package.

Every name this module defined is re-exported, so ``from rec_es.diagnose import explain`` and
``python -m rec_es.diagnose RUN`` keep working. New code imports from ``rec_es.explain``.
"""
from __future__ import annotations

import sys

from rec_es.explain.adapters import (_check_replay_matches_log, _from_stock_log, _from_trace, _int,  # noqa: F401
                                     _original_policy, _trace_ending, load_run)
from rec_es.explain.cli import main
from rec_es.explain.counterfactual import (DEFAULT_POLICIES, _observed_label, _policy_mapping,  # noqa: F401
                                           _same_as_observed, _setting_text, _tie_sensitivity, counterfactuals,
                                           read_policy_file)
from rec_es.explain.figure import _smoothed_series, plot  # noqa: F401
from rec_es.explain.fmt import _fmt, _label, _plural  # noqa: F401
from rec_es.explain.observed import EXPECTED, ExplainError, Observed  # noqa: F401
from rec_es.explain.render import _row_outcome, render_text  # noqa: F401
from rec_es.explain.report import explain
from rec_es.explain.sentences import (_setting_for_reason, _setting_name, _verdict, advice,  # noqa: F401
                                      analyse_premature, analyse_stop, worth_trying)
from rec_es.explain.stats import (_better, _gaps, _patience_evaluations, _spike, noise_level,  # noqa: F401
                                  trend_change)
from rec_es.recbole_log import stock_policy_mapping, trace_from_recbole_log  # noqa: F401

__all__ = ["DEFAULT_POLICIES", "ExplainError", "Observed", "explain", "load_run", "main", "render_text", "plot"]

if __name__ == "__main__":
    sys.exit(main())
