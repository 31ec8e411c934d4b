"""The policy core must stay importable without torch, numpy or recbole."""
import subprocess
import sys


def test_policy_core_imports_no_heavy_dependency() -> None:
    """Importing rec_es, rec_es.policy, rec_es.config.properties, rec_es.policy.controller and rec_es.policy.validate pulls in no torch,
    numpy or recbole."""
    code = (
        "import sys, rec_es, rec_es.policy, rec_es.policy.presets, rec_es.config.properties, rec_es.policy.controller, rec_es.policy.validate\n"
        "p = rec_es.build_policy({'monitor': 'ndcg@10', 'patience': 2})\n"
        "p.update(0, {'ndcg@10': 0.1})\n"
        "print(','.join(m for m in ('torch', 'numpy', 'recbole') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
