"""rec_es.compat: RecBole's SINE import switches autograd anomaly detection on for the whole process (twice as
slow training); importing rec_es's trainer switches it back to what it was. Each case runs in a fresh
interpreter, because the switch happens on import. RecBole's Config assigns numpy names that numpy 2 removed;
rec_es's Config works on both."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from rec_es.training.compat import recbole_config

SCRIPT = textwrap.dedent("""
    import sys, torch
    case = sys.argv[1]
    if case == "user_on":
        torch.autograd.set_detect_anomaly(True)
    if case == "sine_first":
        from recbole.utils import get_model; get_model("GRU4Rec")
    if case != "stock":
        import rec_es.training.trainer
    from recbole.utils import get_model; get_model("GRU4Rec")
    if case != "stock":
        import rec_es.training.compat
        rec_es.training.compat.apply_recbole_fixes()  # a second call leaves the flag alone
    print(torch.is_anomaly_enabled())
""")


def _anomaly_after(case: str) -> bool:
    out = subprocess.run([sys.executable, "-c", SCRIPT, case], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return {"True": True, "False": False}[out.stdout.strip().splitlines()[-1]]


@pytest.mark.parametrize(("case", "expected"), [
    ("stock", True),        # the RecBole 1.2.1 behaviour being fixed: get_model alone switches it on
    ("rec_es", False),      # rec_es imported first: back to torch's default
    ("sine_first", False),  # SINE imported before rec_es: the flag is SINE's, switched off
    ("user_on", True),      # the user switched it on before: kept
])
def test_anomaly_detection_is_what_the_user_set_not_what_sine_set(case: str, expected: bool) -> None:
    assert _anomaly_after(case) is expected


NUMPY_SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    sys.argv = sys.argv[:1]  # RecBole's Config reads --key=value words of sys.argv
    from recbole.config import Config
    try:
        Config(model="BPR", dataset="ml-100k", config_dict={"use_gpu": False})
    except AttributeError as exc:
        print(exc)
""")


@pytest.mark.skipif(hasattr(np, "float_"), reason="numpy 1 still has np.float_: RecBole's Config works as shipped")
def test_stock_recbole_config_fails_on_numpy2() -> None:
    """The RecBole 1.2.1 behaviour being fixed: without rec_es, any Config raises on numpy 2 (np.float_ is gone)."""
    out = subprocess.run([sys.executable, "-c", NUMPY_SCRIPT], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "`np.float_` was removed in the NumPy 2.0 release" in out.stdout


def test_recbole_config_sets_recboles_numpy_aliases_on_this_numpy() -> None:
    """recbole_config builds a Config on numpy 1 or 2, and RecBole's aliases are the numpy-1 objects it expects."""
    config = recbole_config("BPR", "ml-100k", {"use_gpu": False})
    assert config["model"] == "BPR"
    expected = {"bool": np.bool_, "int": np.int_, "float": np.float64, "complex": np.complex128,
                "object": np.object_, "str": np.str_, "long": np.int_, "unicode": np.str_}
    assert {alias: getattr(np, alias) for alias in expected} == expected
    # what RecBole's metrics do with them (evaluator/metrics.py:90, :287)
    assert np.zeros_like(np.array([[True]]), dtype=np.float).dtype == np.float64
    assert np.full(2, True, dtype=np.bool).dtype == np.bool_
