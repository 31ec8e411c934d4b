"""``rec-es compare`` / ``scripts/compare_policies.py``: stopping policies over several seeds, replayed and live.

    rec-es compare --config properties/gru4rec_ml100k.yaml --policies properties/policies/*.yaml \\
                   --seeds 3 [--max-epochs N] [--output DIR] [--replay-only] [--cache-dir DIR]

1. **Record**: per seed, one run with stopping disabled for the whole epoch budget, evaluating the test
   set at every epoch too (``record_test``). Runs are cached (``--cache-dir``, default ``.rec_es_cache/traces``)
   under a key hashed from everything that affects training: the merged RecBole config (without
   ``early_stopping``), the seed, the budget, the rec_es/RecBole/torch versions and a hash of the source of
   rec_es's training modules. Each entry carries its key and a SHA-256 of its files; an edited or corrupted
   entry is an error (or re-recorded with ``--refresh-cache``), never used.
2. **Replay**: each policy that does not change training decides on each recorded trace (``rec_es.replay``).
3. **Live**: a policy file whose ``lr_schedule`` differs from the recording's (e.g. ``reduce_on_plateau``) or that
   sets other training keys is trained seed by seed (also cached); its rows say ``live``.
4. **Oracle**: the best validation epoch of each full trace (by ``--oracle-monitor``, default ``valid_metric``).

Writes ``table.csv`` (mean and std over seeds per policy), ``runs.csv`` (one row per policy and seed),
``table.md`` and ``compare.png`` into ``--output`` and prints the Markdown table.

One module per job: ``specs`` (policy files), ``cache`` (the trace cache), ``jobs`` (training runs, in parallel),
``comparison`` (``compare``), ``table`` (rows, Markdown, CSV), ``figure`` (``compare.png``); the command
is ``rec_es.cli.compare``.
"""
from rec_es.compare.cache import (CACHE_FILES, CACHE_FORMAT, CACHE_META, CACHE_VERSION, DEFAULT_CACHE,
                                  NON_TRAINING_KEYS, TRAINING_MODULES, CacheError, TraceCache, cache_fields, cache_key,
                                  file_sha256, source_hash)
from rec_es.compare.comparison import Comparison, compare, live_result, seeds_from
from rec_es.compare.figure import plot
from rec_es.compare.jobs import RECORD_NAME, Job, run_cached, run_jobs
from rec_es.compare.specs import QUALITY, PolicySpec, check_quality_metrics, load_policies, recording_config
from rec_es.compare.table import HEADERS, Row, Stat, markdown, rows, write_runs_csv, write_table_csv


__all__ = ["CACHE_FILES", "CACHE_FORMAT", "CACHE_META", "CACHE_VERSION", "DEFAULT_CACHE", "HEADERS",
           "NON_TRAINING_KEYS", "QUALITY", "RECORD_NAME", "TRAINING_MODULES", "CacheError", "Comparison", "Job",
           "PolicySpec", "Row", "Stat", "TraceCache", "cache_fields", "cache_key",
           "check_quality_metrics", "compare", "file_sha256", "live_result", "load_policies", "markdown",
           "plot", "recording_config", "rows", "run_cached", "run_jobs", "seeds_from", "source_hash",
           "write_runs_csv", "write_table_csv"]
