"""What a run directory is, and the only code that reads and writes one.

``trace`` (``trace.jsonl``: one JSON line per evaluation, validated on read), ``per_user`` (the per-user score
sidecar, numpy, nothing pickled), ``checkpoint`` (weights-only ``best.pth``/``last.pth``, written atomically,
and the run state they carry), ``recbole_checkpoint`` (stock RecBole's pickled checkpoints, read through a
restricted unpickler), ``paths`` (output paths checked before any work; atomic writes that never follow a
planted link), ``textio`` / ``yamlio`` (the one bounded text reader and the one YAML loader of every command).
The file-by-file contract: docs/CONTRACT.md. Nothing here imports RecBole, except the restricted unpickler when a
file names a RecBole class.
"""
