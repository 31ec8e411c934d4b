"""rec_es.compat: RecBole's SINE import switches autograd anomaly detection on for the whole process (twice as
slow training); importing rec_es's trainer switches it back to what it was. Each case runs in a fresh
interpreter, because the switch happens on import."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent("""
    import sys, torch
    case = sys.argv[1]
    if case == "user_on":
        torch.autograd.set_detect_anomaly(True)
    if case == "sine_first":
        from recbole.utils import get_model; get_model("GRU4Rec")
    if case != "stock":
        import rec_es.trainer
    from recbole.utils import get_model; get_model("GRU4Rec")
    if case != "stock":
        import rec_es.compat
        rec_es.compat.apply_recbole_fixes()  # a second call leaves the flag alone
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
