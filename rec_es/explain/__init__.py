"""``rec-es explain RUN``: why a run stopped, whether that looks premature, what other settings would have done.

RUN is a rec_es run directory (``trace.jsonl``), a ``trace.jsonl`` file, or a log file written by stock
RecBole (``log/<Model>/<Model>-<dataset>-<time>.log``). A stock log is turned into the same in-memory
``Trace`` a rec_es run writes, with RecBole's own rule (``rec_es.policy.presets``: ties reset the counter, stop
on the ``stopping_step + 1``-th miss, counted in evaluations of ``eval_step`` epochs) replayed as the observed
policy.

The stop, the ties and the counterfactual table are computed from the observed evaluations only: a policy that
would not have stopped before the data ends is reported as "still running at epoch N (data ends)". Two parts look
beyond, and say so: the verdict (``verdict``: premature / not premature / cannot tell, on the shared "still
learning" estimator's long-horizon trend, the budget left and the training loss) and what was lost (``lost``:
the estimator's extrapolated learning curve, and the "data ends" policies replayed on simulated continuations of
it). docs/explain_verdict.md has the rules and the benchmark that scores them.

Definitions used in the report (all on the raw monitor values, in evaluation order):
  * noise: standard deviation of the evaluation-to-evaluation changes over the whole run;
  * trend (near the stop): least-squares slope over the last ``max(5, patience + 1)`` evaluations, times the
    epochs they span (the change the fitted line makes across that window); "still improving" when it beats
    the noise. The verdict's trend is the estimator's, over the last half of the run;
  * recovered gap: a run of evaluations without improvement that ended with an improvement;
  * tie reset: an evaluation counted as an improvement although it only equalled the best (RecBole does this).

One module per job: ``adapters`` (RUN as an ``Observed``), ``stats``, ``sentences`` (stop, premature, advice),
``verdict`` (the call and its facts), ``lost`` (the expected gain), ``counterfactual`` (replayed policies),
``probe_stats`` and ``probe`` (``--probe N``: the continuation measured on per-user scores, the offer),
``report`` (``explain``), ``render`` (text), ``figure`` (PNG); the command is ``rec_es.cli.explain``.
"""
from rec_es.explain.adapters import load_run
from rec_es.explain.counterfactual import DEFAULT_POLICIES, counterfactuals, read_policy_file
from rec_es.explain.figure import plot
from rec_es.explain.observed import ExplainError, Observed
from rec_es.explain.render import render_text
from rec_es.explain.report import explain
from rec_es.explain.sentences import advice, analyse_premature, analyse_stop, worth_trying
from rec_es.explain.stats import noise_level, trend_change

__all__ = ["DEFAULT_POLICIES", "ExplainError", "Observed", "advice", "analyse_premature", "analyse_stop",
           "counterfactuals", "explain", "load_run", "noise_level", "plot", "read_policy_file", "render_text",
           "trend_change", "worth_trying"]
