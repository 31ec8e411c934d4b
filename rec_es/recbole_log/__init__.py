"""Read the log files that stock RecBole 1.2.1 writes (``log/<Model>/<Model>-<dataset>-<time>.log``).

A stock log holds, in this order: the config dump (``key = value`` lines under "General Hyper
Parameters:" etc.), dataset and model summaries, then per epoch

    epoch 3 training [time: 0.67s, train loss: 40.7725]
    epoch 3 evaluating [time: 0.00s, valid_score: 0.013300]      (every eval_step epochs)
    valid result:
    recall@10 : 0.025    ndcg@10 : 0.0133    mrr@10 : 0.0101
    Saving current: saved/GRU4Rec-....pth                          (only on an improvement or tie)

and at the end ``Finished training, best eval result in epoch N`` (only when ``stopping_step``
stopped the run), ``best valid : OrderedDict(...)`` and ``test result: OrderedDict(...)``.
The console copy of the same lines (other timestamp format, ANSI colour codes on a terminal) is
accepted too. What cannot be read is reported in ``RecBoleLog.warnings``, never silently skipped.

``model`` holds what is read (``RecBoleLog``), ``parse`` reads it, ``to_trace`` turns it into a rec_es ``Trace``.
"""
from rec_es.recbole_log.model import RECBOLE_DEFAULTS, LogEvaluation, LogFormatError, RecBoleLog
from rec_es.recbole_log.parse import looks_like_recbole_log, parse_recbole_log, parse_recbole_log_text, strip_ansi
from rec_es.recbole_log.to_trace import stock_policy_mapping, trace_from_recbole_log

__all__ = [
    "RECBOLE_DEFAULTS",
    "LogEvaluation",
    "LogFormatError",
    "RecBoleLog",
    "looks_like_recbole_log",
    "parse_recbole_log",
    "parse_recbole_log_text",
    "stock_policy_mapping",
    "strip_ansi",
    "trace_from_recbole_log",
]
