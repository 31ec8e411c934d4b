"""``rec-es explain RUN``: why a run stopped, whether that looks premature, what other settings would have done.

RUN is a rec_es run directory (``trace.jsonl``), a ``trace.jsonl`` file, or a log file written by stock
RecBole (``log/<Model>/<Model>-<dataset>-<time>.log``). A stock log is turned into the same in-memory
``Trace`` a rec_es run writes, with RecBole's own rule (``recbole_legacy``: ties reset the counter, stop on the
``stopping_step + 1``-th miss, counted in evaluations of ``eval_step`` epochs) replayed as the observed policy.

Everything is computed from the observed evaluations only: a counterfactual policy that would not have stopped
before the data ends is reported as "still running at epoch N (data ends)"; nothing is guessed beyond.

Definitions used in the report (all on the raw monitor values, in evaluation order):
  * noise: standard deviation of the evaluation-to-evaluation changes over the whole run;
  * trend: least-squares slope over the last ``max(5, patience + 1)`` evaluations, times the epochs they span
    (the change the fitted line makes across that window); "still improving" when it beats the noise;
  * recovered gap: a run of evaluations without improvement that ended with an improvement;
  * tie reset: an evaluation counted as an improvement although it only equalled the best (RecBole does this).

One module per job: ``adapters`` (RUN as an ``Observed``), ``stats``, ``sentences`` (stop, verdict, advice),
``counterfactual`` (replayed policies), ``report`` (``explain``), ``render`` (text), ``figure`` (PNG), ``cli``.
"""
from rec_es.explain.adapters import load_run
from rec_es.explain.cli import main
from rec_es.explain.counterfactual import DEFAULT_POLICIES, counterfactuals, read_policy_file
from rec_es.explain.figure import plot
from rec_es.explain.observed import ExplainError, Observed
from rec_es.explain.render import render_text
from rec_es.explain.report import explain
from rec_es.explain.sentences import advice, analyse_premature, analyse_stop, worth_trying
from rec_es.explain.stats import noise_level, trend_change

__all__ = ["DEFAULT_POLICIES", "ExplainError", "Observed", "advice", "analyse_premature", "analyse_stop",
           "counterfactuals", "explain", "load_run", "main", "noise_level", "plot", "read_policy_file", "render_text",
           "trend_change", "worth_trying"]
