"""``import rec_es.recbole_fix``: stock ``run_recbole`` trains and tests (reloading its best checkpoint through the
restricted loader) on numpy 2 and torch >= 2.6, and RecBole's own reload refuses a planted malicious checkpoint.

One fresh interpreter (the import patches the process), one thread, one epoch of GRU4Rec on the tiny slice.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from conftest import REPO, tiny_recbole_config

SCRIPT = textwrap.dedent("""
    import json, os, sys
    args = json.loads(sys.argv[1])
    sys.argv = sys.argv[:1]  # RecBole's Config reads --key=value words of sys.argv
    import torch
    torch.set_num_threads(1)

    import rec_es.recbole_fix
    import recbole.trainer.trainer as recbole_trainer
    patched = recbole_trainer.torch
    import rec_es.recbole_fix  # a second import changes nothing ...
    rec_es.recbole_fix.apply()  # ... and neither does applying it again
    out = {"patched": type(patched).__name__, "idempotent": recbole_trainer.torch is patched,
           "torch_load_untouched": torch.load.__module__ == "torch.serialization"}

    loads, trainers = [], []
    load_dict = rec_es.recbole_fix.load_dict
    def counting_load_dict(f, map_location=None):
        loads.append(str(f))
        return load_dict(f, map_location)
    rec_es.recbole_fix.load_dict = counting_load_dict
    fit = recbole_trainer.Trainer.fit
    def keeping_fit(self, *a, **k):
        trainers.append(self)
        return fit(self, *a, **k)
    recbole_trainer.Trainer.fit = keeping_fit

    from recbole.quick_start import run_recbole
    result = run_recbole(model=args["config"]["model"], dataset=args["config"]["dataset"], config_dict=args["config"])
    out["test_result"] = {k: float(v) for k, v in result["test_result"].items()}
    trainer = trainers[0]
    out["saved"], out["loads"] = trainer.saved_model_file, list(loads)

    class Mkdir:
        def __reduce__(self):
            return (os.mkdir, (args["marker"],))
    class LocalTime:
        def __reduce__(self):
            from recbole.utils.utils import get_local_time
            return (get_local_time, ())
    def plant(path, payload):
        torch.save({"config": payload, "epoch": 0, "cur_step": 0, "best_valid_score": 0.1, "state_dict": {},
                    "other_parameter": {}, "optimizer": {}}, path, pickle_protocol=4)

    out["refused"] = {}
    plant(trainer.saved_model_file, Mkdir())  # where the log says the best model is
    calls = {
        "evaluate": lambda: trainer.evaluate([None], load_best_model=True),
        "resume_checkpoint": lambda: trainer.resume_checkpoint(trainer.saved_model_file),
        "evaluate(model_file=local_time.pth)": lambda: (plant("local_time.pth", LocalTime()),
                                                        trainer.evaluate([None], model_file="local_time.pth")),
    }
    for name, call in calls.items():
        try:
            call()
            out["refused"][name] = None
        except Exception as exc:
            out["refused"][name] = [type(exc).__name__, str(exc)]
    print("RESULT " + json.dumps(out))
""")


def test_stock_run_recbole_trains_tests_and_refuses_a_planted_checkpoint(tmp_path: Path) -> None:
    """run_recbole after the import: trains, reloads its best model through the loader for the test; a planted
    os.mkdir checkpoint (and a recbole function call) is refused by evaluate and resume_checkpoint, no marker."""
    marker = tmp_path / "PWNED"
    config = tiny_recbole_config(epochs=1, metrics=["NDCG"], checkpoint_dir=str(tmp_path / "saved"))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get(
        "PYTHONPATH", "")]), "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run([sys.executable, "-c", SCRIPT, json.dumps({"config": config, "marker": str(marker)})],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(next(line for line in proc.stdout.splitlines() if line.startswith("RESULT "))[7:])

    assert out["patched"] == "TorchForRecBole" and out["idempotent"] and out["torch_load_untouched"]
    assert set(out["test_result"]) == {"ndcg@10"} and 0 <= out["test_result"]["ndcg@10"] <= 1
    assert out["loads"] == [out["saved"]], "the test phase must reload the best model through the loader"
    saved, mkdir = out["saved"], f"{os.mkdir.__module__}.mkdir"
    for call in ("evaluate", "resume_checkpoint"):
        kind, message = out["refused"][call]
        assert kind == "UnsafePickleError" and saved in message and f"'{mkdir}'" in message, (call, message)
    kind, message = out["refused"]["evaluate(model_file=local_time.pth)"]
    assert kind == "UnsafePickleError" and "local_time.pth" in message
    assert "'recbole.utils.utils.get_local_time'" in message
    assert not marker.exists()
