"""A RecBole checkpoint from someone else must not run code: the restricted loader refuses every planted pickle.

Each file is a real torch zip checkpoint whose pickle asks for something no RecBole checkpoint holds. For the
payloads that act (a marker directory), loading the same bytes with ``torch.load(weights_only=False)`` is shown to
create the marker, so the refusal is what keeps it away. The patched stock reload (``import rec_es.recbole_fix``)
is tested on the same files in tests/integration/test_recbole_fix.py.
"""
from __future__ import annotations

import io
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any, Callable

import pytest
import torch
import yaml

from rec_es.policy.errors import StateError
from rec_es.rundir import recbole_checkpoint
from rec_es.rundir.recbole_checkpoint import UnsafePickleError


class Mkdir:
    """Unpickling this calls ``os.mkdir(marker)``: the marker's existence proves code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.mkdir, (str(self.marker),))


class ConfigEval:
    """Unpickling this calls RecBole's ``Config(config_dict={"x": "<code>"})``, whose ``__init__`` ``eval``s the
    string: admitting the ``Config`` class by name is not enough, calling it must be refused too."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        from recbole.config.configurator import Config

        return (Config, (None, None, None, {"x": f"__import__('os').mkdir({str(self.marker)!r})"}))


class LocalTime:
    """A function of an admitted package (``recbole.utils.utils.get_local_time``), called."""

    def __reduce__(self):  # type: ignore[no-untyped-def]
        from recbole.utils.utils import get_local_time

        return (get_local_time, ())


def checkpoint_with(config: Any) -> dict[str, Any]:
    """A RecBole-shaped checkpoint whose "config" is ``config``."""
    return {"config": config, "epoch": 0, "cur_step": 0, "best_valid_score": 0.1,
            "state_dict": {"w": torch.zeros(2)}, "other_parameter": {}, "optimizer": None}


def torch_zip(data_pkl: bytes) -> bytes:
    """A torch zip checkpoint whose data.pkl record is ``data_pkl`` (written by hand, opcode by opcode)."""
    template = io.BytesIO()
    torch.save({}, template)
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(template.getvalue())) as zin, zipfile.ZipFile(out, "w") as zout:
        for name in zin.namelist():
            zout.writestr(name, data_pkl if name.endswith("/data.pkl") else zin.read(name))
    return out.getvalue()


def glob(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"  # GLOBAL


PROTO = b"\x80\x04"
#: hand-written pickles: (bytes, the refused global, words of the refusal)
RAW: dict[str, tuple[bytes, str, str]] = {
    # setattr(yaml.FullLoader, "pwned", 1) through BUILD's slot state: an admitted class given attributes
    "attributes on an admitted class": (
        PROTO + glob("yaml.loader", "FullLoader") + b"N}\x8c\x05pwnedK\x01s\x86b.",
        "yaml.loader.FullLoader", "setting attributes of 'yaml.loader.FullLoader' itself"),
    # a Config made empty (as a checkpoint does), then given items through Config.__setitem__
    "items added to a Config": (
        PROTO + glob("recbole.config.configurator", "Config") + b")\x81(\x8c\x01xK\x01u.",
        "recbole.config.configurator.Config", "adding items to a 'recbole.config.configurator.Config'"),
    # os.system("true")
    "os.system": (PROTO + glob("os", "system") + b"\x8c\x04true\x85R.", "os.system", "the global 'os.system'"),
    # eval("1")
    "builtins.eval": (PROTO + glob("builtins", "eval") + b"\x8c\x011\x85R.", "builtins.eval",
                      "the global 'builtins.eval'"),
    # numpy.dtype given an object to inspect instead of a type code
    "numpy.dtype of a class": (PROTO + glob("numpy", "dtype") + glob("yaml.loader", "FullLoader") + b"\x85R.",
                               "numpy.dtype", "a call of 'numpy.dtype' with its first argument is not a type code"),
    # OrderedDict(config): iterating a Config calls its __getitem__ with 0, 1, 2, ... for ever
    "an OrderedDict built from a Config": (
        PROTO + glob("collections", "OrderedDict") + glob("recbole.config.configurator", "Config") + b")\x81\x85R.",
        "collections.OrderedDict", "a call of 'collections.OrderedDict' with arguments"),
    # a RecBole model class called instead of referenced
    "a model class called": (
        PROTO + glob("recbole.model.general_recommender.bpr", "BPR") + b"NN\x86R.",
        "recbole.model.general_recommender.bpr.BPR", "a call of 'recbole.model.general_recommender.bpr.BPR', "
                                                     "which a RecBole checkpoint never calls"),
    # a recbole.model submodule's function (not a model class) is no model class
    "a function under recbole.model": (
        PROTO + glob("recbole.model.init", "xavier_normal_initialization") + b".",
        "recbole.model.init.xavier_normal_initialization", "the global"),
}


@pytest.fixture
def planted(tmp_path: Path) -> Callable[[str, Any], Path]:
    """Writes a checkpoint file ``name`` holding ``obj`` (a torch.save'd object, or raw data.pkl bytes)."""
    def write(name: str, obj: Any) -> Path:
        path = tmp_path / "saved" / name
        path.parent.mkdir(exist_ok=True)
        if isinstance(obj, bytes):
            path.write_bytes(torch_zip(obj))
        else:
            torch.save(obj, path, pickle_protocol=4)
        return path
    return write


def assert_refused(path: Path, refused: str, words: str) -> None:
    with pytest.raises(UnsafePickleError) as info:
        recbole_checkpoint.load(path)
    message = str(info.value)
    assert info.value.refused == refused
    assert str(path) in message and words in message and "the load stopped before running it" in message
    with pytest.raises(UnsafePickleError):
        recbole_checkpoint.load_dict(path, map_location="cpu")


def test_a_planted_os_mkdir_is_refused_naming_the_file_and_global(planted: Callable[[str, Any], Path],
                                                                  tmp_path: Path) -> None:
    """A checkpoint whose config unpickles to os.mkdir(marker): refused, 'posix.mkdir' named, no marker; the same
    bytes loaded with weights_only=False make the marker."""
    marker = tmp_path / "PWNED"
    path = planted("GRU4Rec-evil.pth", checkpoint_with(Mkdir(marker)))

    assert_refused(path, f"{os.mkdir.__module__}.mkdir", f"the global '{os.mkdir.__module__}.mkdir'")

    assert not marker.exists()
    torch.load(path, weights_only=False)
    assert marker.exists(), "the payload must be live for this test to mean anything"


def test_a_call_of_recboles_config_is_refused_though_config_is_admitted(planted: Callable[[str, Any], Path],
                                                                        tmp_path: Path) -> None:
    """Config(config_dict={"x": code}) evals the code: the loader refuses the call (only an empty Config is made);
    weights_only=False runs the code."""
    from rec_es.training.compat import use_numpy2_aliases

    marker = tmp_path / "PWNED"
    path = planted("evil-config.pth", checkpoint_with(ConfigEval(marker)))

    assert_refused(path, "recbole.config.configurator.Config",
                   "a call of 'recbole.config.configurator.Config', which a RecBole checkpoint never calls")

    assert not marker.exists()
    use_numpy2_aliases()  # stock Config fails on numpy 2 before it reaches the eval
    with pytest.raises(KeyError):  # RecBole then finds no model name: the eval had run already
        torch.load(path, weights_only=False)
    assert marker.exists(), "the payload must be live for this test to mean anything"


def test_a_function_of_an_admitted_package_is_refused(planted: Callable[[str, Any], Path]) -> None:
    """recbole.utils.utils.get_local_time lives beside admitted RecBole classes; it is not admitted."""
    path = planted("local-time.pth", checkpoint_with(LocalTime()))
    assert_refused(path, "recbole.utils.utils.get_local_time", "the global 'recbole.utils.utils.get_local_time'")


@pytest.mark.parametrize("case", list(RAW))
def test_hand_written_pickles_are_refused(planted: Callable[[str, Any], Path], case: str) -> None:
    """Each hand-written pickle (a refused global, a call, state or items given to the wrong object) is refused."""
    data, refused, words = RAW[case]
    path = planted("raw.pth", data)
    assert_refused(path, refused, words)
    assert not hasattr(yaml.FullLoader, "pwned")


def test_a_plain_pickle_is_not_unpickled(tmp_path: Path) -> None:
    """A plain pickle file (not a torch zip) is refused before a byte of it is unpickled."""
    marker = tmp_path / "PWNED"
    path = tmp_path / "model.pth"
    path.write_bytes(pickle.dumps(Mkdir(marker)))
    with pytest.raises(StateError, match="not a torch zip checkpoint") as info:
        recbole_checkpoint.load(path)
    assert str(path) in str(info.value)
    assert not marker.exists()


def test_a_torchscript_archive_is_not_handed_to_torch_jit(tmp_path: Path) -> None:
    """torch.load passes a TorchScript zip to torch.jit.load; the loader refuses it instead."""
    path = tmp_path / "scripted.pth"
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), str(path))
    with pytest.raises(StateError, match="TorchScript archive"):
        recbole_checkpoint.load(path)
