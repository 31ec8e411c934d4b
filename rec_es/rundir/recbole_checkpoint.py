"""Read stock RecBole checkpoints without running code from the file: a restricted unpickler.

RecBole 1.2.1's ``Trainer._save_checkpoint`` writes ``torch.save({"config": Config, "epoch", "cur_step",
"best_valid_score", "state_dict", "other_parameter", "optimizer"}, path, pickle_protocol=4)``. The pickled
``Config`` makes ``torch.load(weights_only=True)`` refuse the file (RecBole #2155); ``weights_only=False`` would
run whatever the file asks for. This module loads such a file through ``torch.load`` with a restricted
``pickle_module`` (``PICKLE_MODULE``) whose ``Unpickler``:

* resolves only the globals listed in ``ADMITTED`` (exact ``module.name``; no module is admitted as a whole) plus
  RecBole model classes: a class named ``recbole.model.<...>.<Name>`` that, once its module is imported, is a
  subclass of ``recbole.model.abstract_recommender.AbstractRecommender``;
* lets the file use each admitted global only the way a checkpoint does (``Use``): call it (``CALL``: tensor,
  numpy and enum reconstruction, with their arguments checked), make an empty instance of it whose ``__init__``
  never runs (``NEW``: RecBole's ``Config``, SciPy sparse matrices), or only hold it as a value (``REF``: the
  model class, ``yaml.FullLoader``, storage types). Calling ``Config`` is refused: its ``__init__`` ``eval``s
  string values of ``config_dict``, so a file that could call it could run anything;
* fills instances only through ``__dict__`` (RecBole's ``Config``, SciPy) or numpy's own ``__setstate__``, and adds
  items only to plain lists, dicts and sets: no ``setattr``, no ``__setitem__`` / ``append`` of another class.

Anything else stops the load before it happens with ``UnsafePickleError`` naming the file and the refused global
(``module.name``) or operation. The file is read into memory once, and must be a torch zip checkpoint that is not a
TorchScript archive (``torch.load`` would hand one to ``torch.jit.load``).

``load(path)`` returns a typed ``RecBoleCheckpoint`` (the config as plain data); ``load_dict(path, map_location)``
returns what RecBole's own ``torch.load`` call would (its ``Config`` object included): ``rec_es.recbole_fix``
routes RecBole's reload through it. No RecBole import at module level: RecBole is imported only when a file
names one of its globals.
"""
from __future__ import annotations

import collections
import enum
import importlib
import io
import os
import pickle
import types
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Callable, Mapping

import numpy as np
import torch

from rec_es.policy.errors import StateError


class Use(enum.Enum):
    """What a pickle may do with an admitted global."""

    CALL = "call"  # REDUCE: called with arguments from the file (checked by ARGUMENT_CHECKS where listed)
    NEW = "new"    # NEWOBJ with no arguments: cls.__new__(cls), then its __dict__ filled by BUILD; __init__ never runs
    REF = "ref"    # only held as a value (a class attribute of Config, a subtype given to numpy, a storage type)


CALL, NEW, REF = Use.CALL, Use.NEW, Use.REF

#: Every global a stock RecBole 1.2.1 checkpoint references, with how it is used. Found by
#: scripts/recbole_checkpoint_globals.py: one epoch of stock RecBole with saved=True for GRU4Rec (CE and BPR loss),
#: SASRec, BPR, LightGCN, NeuMF, FM (Trainer) and Pop, ItemKNN, EASE (TraditionalTrainer) on datasets/ml-100k-tiny
#: (numpy 2.4, torch 2.13, SciPy 1.17, PyYAML 6), walking the opcodes of each data.pkl with pickletools.genops.
#: Entries not seen there say why they are listed. RecBole's model classes are admitted by ``model_class``.
ADMITTED: dict[str, Use] = {
    # the checkpoint's "config": Config.__dict__ holds yaml_loader = yaml.FullLoader (the class, never an
    # instance), model_class, and in final_config_dict three enums and config["device"]
    "recbole.config.configurator.Config": NEW,               # all models
    "yaml.loader.FullLoader": REF,                           # all models
    "recbole.utils.enum_type.ModelType": CALL,               # all models: ModelType(2)
    "recbole.utils.enum_type.InputType": CALL,               # all models
    "recbole.utils.enum_type.EvaluatorType": CALL,           # all models
    "torch.device": CALL,                                    # all models: torch.device("cpu")
    # state_dict, optimizer state, tensors in other_parameter (LightGCN's restore_user_e, Pop's item_cnt)
    "collections.OrderedDict": CALL,                         # all models
    "torch._utils._rebuild_tensor_v2": CALL,                 # all models
    "torch.FloatStorage": REF,                               # all models
    "torch.LongStorage": REF,                                # Pop
    # other storage types of the same family, for a model whose tensors have another dtype (torch.load resolves any
    # "*Storage" name itself before asking this unpickler, so these entries only keep the list complete)
    "torch.DoubleStorage": REF, "torch.HalfStorage": REF, "torch.BFloat16Storage": REF, "torch.IntStorage": REF,
    "torch.ShortStorage": REF, "torch.CharStorage": REF, "torch.ByteStorage": REF, "torch.BoolStorage": REF,
    # numpy: best_valid_score is a numpy.float64 (all but FM, whose AUC comes back a Python float)
    "numpy._core.multiarray.scalar": CALL,                   # GRU4Rec SASRec BPR LightGCN NeuMF Pop ItemKNN EASE
    "numpy.dtype": CALL,                                     # the same
    # the same two functions as a file written under numpy 1 names them (not seen here: numpy 2 writes _core)
    "numpy.core.multiarray.scalar": CALL,
    "numpy.core.multiarray._reconstruct": CALL,
    # numpy arrays and SciPy matrices in other_parameter of RecBole's TraditionalTrainer models
    "numpy._core.multiarray._reconstruct": CALL,             # ItemKNN EASE
    "numpy.ndarray": REF,                                    # ItemKNN EASE
    "numpy.matrix": REF,                                     # EASE
    "scipy.sparse._csr.csr_matrix": NEW,                     # EASE
    "scipy.sparse._csc.csc_matrix": NEW,                     # ItemKNN
    "scipy.sparse._lil.lil_matrix": NEW,                     # ItemKNN
}

#: CALL globals whose result may get attributes from the file (``__dict__`` only), besides the NEW ones: a
#: state_dict's OrderedDict carries ``_metadata`` (the modules' versions) as an attribute
ATTRIBUTE_STATE = frozenset({"collections.OrderedDict"})
#: numpy 1 names that numpy 2 keeps under numpy._core (resolved there, without numpy 2's deprecation shim)
_NUMPY1_NAMES = {"numpy.core.multiarray.scalar": "numpy._core.multiarray.scalar",
                 "numpy.core.multiarray._reconstruct": "numpy._core.multiarray._reconstruct"}
MODEL_PACKAGE = "recbole.model."
CHECKPOINT_KEYS = ("config", "epoch", "state_dict")


class UnsafePickleError(StateError):
    """A pickle asked for a global or an operation that no RecBole checkpoint needs; the load stopped before it.

    ``path`` is the file (None inside the unpickler), ``refused`` the global as ``module.name`` or the operation.
    """

    def __init__(self, refused: str, detail: str, path: str | os.PathLike[str] | None = None) -> None:
        self.refused, self.detail, self.path = refused, detail, path
        where = f"{path}: " if path is not None else ""
        super().__init__(f"{where}refused to unpickle {detail} (a RecBole checkpoint holds only RecBole's Config, "
                         "enums and model class, yaml's FullLoader, numpy and SciPy values and torch tensors); the "
                         "load stopped before running it. Load the file with torch.load(weights_only=False) only if "
                         "you wrote it yourself")


def _refuse_global(module: str, name: str, why: str = "which no RecBole checkpoint holds") -> UnsafePickleError:
    return UnsafePickleError(f"{module}.{name}", f"the global '{module}.{name}', {why}")


def model_class(module: str, name: str) -> type | None:
    """The RecBole model class ``module.name`` if it is one (under ``recbole.model.``, a subclass of
    ``AbstractRecommender``, defined under that name), else None. Imports ``module`` if it is under recbole.model."""
    if not module.startswith(MODEL_PACKAGE) or not all(p.isidentifier() for p in module.split(".")) \
            or not name.isidentifier():
        return None
    try:
        from recbole.model.abstract_recommender import AbstractRecommender

        obj = getattr(importlib.import_module(module), name, None)
    except ImportError:
        return None
    if isinstance(obj, type) and issubclass(obj, AbstractRecommender) and obj.__name__ == name:
        return obj
    return None


def admitted(module: str, name: str) -> bool:
    """Whether the restricted unpickler resolves the global ``module.name`` (listed, or a RecBole model class)."""
    return f"{module}.{name}" in ADMITTED or model_class(module, name) is not None


def resolve(module: str, name: str) -> tuple[Any, Use]:
    """(the object, its ``Use``) for a listed global or a RecBole model class (REF); ``UnsafePickleError`` for any
    other name, and for a listed one this installation does not have."""
    full = f"{module}.{name}"
    use = ADMITTED.get(full)
    if use is None:
        cls = model_class(module, name)
        if cls is None:
            raise _refuse_global(module, name)
        return cls, REF
    for target in dict.fromkeys((_NUMPY1_NAMES.get(full, full), full)):  # numpy 1 has only its own names
        mod, _, attr = target.rpartition(".")
        try:
            return getattr(importlib.import_module(mod), attr), use
        except (ImportError, AttributeError):
            pass
    raise _refuse_global(module, name, "which this installation does not have")


def _first(kinds: type | tuple[type, ...], what: str) -> Callable[[tuple[Any, ...]], str | None]:
    return lambda args: None if args and isinstance(args[0], kinds) else f"its first argument is not {what}"


_ENUMS = ("recbole.utils.enum_type.ModelType", "recbole.utils.enum_type.InputType",
          "recbole.utils.enum_type.EvaluatorType")
#: What the arguments of a CALL global must be: a check returning what is wrong, or None
ARGUMENT_CHECKS: dict[str, Callable[[tuple[Any, ...]], str | None]] = {
    "torch._utils._rebuild_tensor_v2": lambda a: "a tensor with backward hooks" if len(a) >= 6 and a[5] else None,
    "collections.OrderedDict": lambda a: "arguments" if a else None,  # its items follow with SETITEMS
    **dict.fromkeys(_ENUMS, lambda a: None if len(a) == 1 and type(a[0]) in (int, str) else "not one int or str"),
    "numpy.dtype": _first(str, "a type code"),
    "torch.device": _first((str, int), "a device name"),
    **dict.fromkeys(("numpy._core.multiarray.scalar", "numpy.core.multiarray.scalar"), _first(np.dtype, "a dtype")),
    **dict.fromkeys(("numpy._core.multiarray._reconstruct", "numpy.core.multiarray._reconstruct"),
                    lambda a: None if a and a[0] in (np.ndarray, np.matrix) else "a subtype other than ndarray/matrix"),
}


class RestrictedUnpickler(pickle._Unpickler):
    """The pure-Python ``pickle`` unpickler, restricted to what a RecBole checkpoint does (see the module docs).

    The pure-Python one because its opcode table can be checked: calls (REDUCE), new objects (NEWOBJ), state
    (BUILD) and item additions are allowed only on admitted objects, which the C unpickler cannot express.
    """

    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._uses: dict[int, tuple[str, Use]] = {}  # id(resolved object) -> (name, use)
        self._resolved: list[Any] = []  # keeps those objects (and so their ids) alive

    def find_class(self, module: str, name: str) -> Any:
        obj, use = resolve(module, name)
        self._uses[id(obj)] = (f"{module}.{name}", use)
        self._resolved.append(obj)
        return obj

    def _use(self, obj: Any) -> tuple[str, Use | None]:
        known = self._uses.get(id(obj))
        return known if known is not None else (type(obj).__qualname__, None)

    def _load_reduce(self) -> None:
        func, args = self.stack[-2], self.stack[-1]
        name, use = self._use(func)
        if use is not CALL:
            raise UnsafePickleError(name, f"a call of '{name}'" + (", which a RecBole checkpoint never calls"
                                                                  if use else ""))
        check = ARGUMENT_CHECKS.get(name)
        problem = "arguments that are not a tuple" if type(args) is not tuple else check(args) if check else None
        if problem:
            raise UnsafePickleError(name, f"a call of '{name}' with {problem}")
        pickle._Unpickler.load_reduce(self)

    def _load_newobj(self) -> None:
        cls, args = self.stack[-2], self.stack[-1]
        name, use = self._use(cls)
        if use is not NEW or type(args) is not tuple or args:
            raise UnsafePickleError(name, f"a new '{name}' object" + (f" made with arguments {args!r}"
                                                                        if use is NEW else ""))
        pickle._Unpickler.load_newobj(self)

    def _refused_opcode(self) -> None:
        raise UnsafePickleError("opcode", "an opcode (INST, OBJ or NEWOBJ_EX) that RecBole's pickles never use")

    def _load_build(self) -> None:
        state = self.stack.pop()
        inst = self.stack[-1]
        if id(inst) in self._uses:  # a global itself (a class, a function): never given state
            name = self._uses[id(inst)][0]
            raise UnsafePickleError(name, f"setting attributes of '{name}' itself")
        name, _ = self._use(type(inst))
        if isinstance(inst, (np.ndarray, np.dtype)):
            inst.__setstate__(state)
        elif ADMITTED.get(name) is NEW or name in ATTRIBUTE_STATE:
            if not (isinstance(state, dict) and all(type(k) is str and not k.startswith("__") for k in state)):
                raise UnsafePickleError(name, f"state for a '{name}' that is not a plain attribute mapping")
            inst.__dict__.update(state)
        else:
            raise UnsafePickleError(name, f"setting the state of a '{name}'")

    def _target(self, target: Any, kinds: tuple[type, ...]) -> None:
        if type(target) not in kinds:
            name, _ = self._use(type(target))
            raise UnsafePickleError(name, f"adding items to a '{name}' (only lists, dicts and sets take items)")

    def _load_append(self) -> None:
        self._target(self.stack[-2], (list,))
        pickle._Unpickler.load_append(self)

    def _load_appends(self) -> None:
        self._target(self.metastack[-1][-1], (list,))
        pickle._Unpickler.load_appends(self)

    def _load_setitem(self) -> None:
        self._target(self.stack[-3], (dict, collections.OrderedDict))
        pickle._Unpickler.load_setitem(self)

    def _load_setitems(self) -> None:
        self._target(self.metastack[-1][-1], (dict, collections.OrderedDict))
        pickle._Unpickler.load_setitems(self)

    def _load_additems(self) -> None:
        self._target(self.metastack[-1][-1], (set,))
        pickle._Unpickler.load_additems(self)

    dispatch[pickle.REDUCE[0]] = _load_reduce
    dispatch[pickle.NEWOBJ[0]] = _load_newobj
    dispatch[pickle.NEWOBJ_EX[0]] = _refused_opcode
    dispatch[pickle.INST[0]] = _refused_opcode
    dispatch[pickle.OBJ[0]] = _refused_opcode
    dispatch[pickle.BUILD[0]] = _load_build
    dispatch[pickle.APPEND[0]] = _load_append
    dispatch[pickle.APPENDS[0]] = _load_appends
    dispatch[pickle.SETITEM[0]] = _load_setitem
    dispatch[pickle.SETITEMS[0]] = _load_setitems
    dispatch[pickle.ADDITEMS[0]] = _load_additems


def _restricted_load(file: BinaryIO, **kwargs: Any) -> Any:
    return RestrictedUnpickler(file, **kwargs).load()


def _restricted_loads(data: bytes, **kwargs: Any) -> Any:
    return RestrictedUnpickler(io.BytesIO(data), **kwargs).load()


#: The ``pickle_module`` handed to ``torch.load``: ``Unpickler``, ``load`` and ``loads`` are the restricted ones
PICKLE_MODULE = types.ModuleType("rec_es_restricted_pickle", "pickle, restricted to what a RecBole checkpoint holds")
PICKLE_MODULE.Unpickler = RestrictedUnpickler  # type: ignore[attr-defined]
PICKLE_MODULE.load = _restricted_load  # type: ignore[attr-defined]
PICKLE_MODULE.loads = _restricted_loads  # type: ignore[attr-defined]
PICKLE_MODULE.UnpicklingError = pickle.UnpicklingError  # type: ignore[attr-defined]
PICKLE_MODULE.__version__ = "rec_es"  # type: ignore[attr-defined]  # torch reads it only for dill


def _read(source: str | os.PathLike[str] | BinaryIO) -> tuple[str, bytes]:
    """(name for messages, the file's bytes): a path or an open binary file."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise StateError(f"{path}: checkpoint file not found")
        return str(path), path.read_bytes()
    return str(getattr(source, "name", "<stream>")), source.read()


def load_dict(source: str | os.PathLike[str] | BinaryIO, map_location: Any = None) -> dict[str, Any]:
    """What RecBole's ``torch.load(checkpoint_file, map_location=...)`` returns, its ``Config`` object included,
    read through the restricted unpickler (``map_location`` as torch.load takes it). Raises ``UnsafePickleError``
    (a refused global or operation) or ``StateError`` (not a torch zip file, a TorchScript archive, not a RecBole
    checkpoint), naming the file."""
    name, data = _read(source)
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            records = [n.partition("/")[2] for n in zf.namelist()]
    except zipfile.BadZipFile:
        raise StateError(f"{name}: not a torch zip checkpoint (RecBole's torch.save writes one; legacy torch "
                         "files are not read)") from None
    if "constants.pkl" in records:
        raise StateError(f"{name}: a TorchScript archive, not a RecBole checkpoint (torch.load would run its code "
                         "with torch.jit.load)")
    if "data.pkl" not in records:
        raise StateError(f"{name}: a zip file without the data.pkl record of a torch checkpoint")
    try:
        checkpoint = torch.load(io.BytesIO(data), map_location=map_location, pickle_module=PICKLE_MODULE,
                                weights_only=False, mmap=False)
    except UnsafePickleError as exc:
        raise UnsafePickleError(exc.refused, exc.detail, name) from None
    except Exception as exc:  # damaged file, TORCH_FORCE_WEIGHTS_ONLY_LOAD set, ...: say which
        raise StateError(f"{name}: cannot be read as a RecBole checkpoint ({type(exc).__name__}: {exc})") from exc
    missing = [k for k in CHECKPOINT_KEYS if not isinstance(checkpoint, dict) or k not in checkpoint]
    if missing:
        raise StateError(f"{name}: not a RecBole checkpoint (no {', '.join(repr(k) for k in missing)})")
    from recbole.config.configurator import Config

    if not isinstance(checkpoint["config"], Config) or "final_config_dict" not in vars(checkpoint["config"]):
        raise StateError(f"{name}: its 'config' is not a RecBole Config")
    if not isinstance(checkpoint["state_dict"], Mapping) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in checkpoint["state_dict"].items()):
        raise StateError(f"{name}: its 'state_dict' is not a mapping of names to tensors")
    return checkpoint


@dataclass(frozen=True)
class RecBoleCheckpoint:
    """A stock RecBole checkpoint, read safely.

    ``config`` is RecBole's ``Config.final_config_dict`` as plain data (str keys; enums by name, ``device`` as a
    string, numpy values as Python ones, tuples as lists); ``cur_step`` (epochs without improvement when saved) and
    ``best_valid_score`` are None when the file has none (RecBole's PretrainTrainer writes neither);
    ``other_parameter`` is what the model's ``other_parameter()`` returned (tensors, numpy arrays, SciPy
    matrices); ``optimizer`` the optimizer's ``state_dict()`` or None.
    """

    path: str
    model: str
    dataset: str
    epoch: int
    cur_step: int | None
    best_valid_score: float | None
    state_dict: dict[str, torch.Tensor]
    other_parameter: dict[str, Any] | None
    optimizer: dict[str, Any] | None
    config: dict[str, Any]


def load(source: str | os.PathLike[str] | BinaryIO, map_location: str | torch.device = "cpu") -> RecBoleCheckpoint:
    """Read a stock RecBole checkpoint through the restricted unpickler (tensors on ``map_location``, default CPU).

    Raises ``UnsafePickleError`` when the file asks for anything a RecBole checkpoint does not hold, ``StateError``
    when it is not a RecBole checkpoint; both name the file.
    """
    raw = load_dict(source, map_location)
    name = str(source) if isinstance(source, (str, os.PathLike)) else str(getattr(source, "name", "<stream>"))
    config = plain_config(raw["config"].final_config_dict, name)
    for key in ("model", "dataset"):
        if not isinstance(config.get(key), str):
            raise StateError(f"{name}: its config has no {key} name")
    epoch = raw["epoch"]
    if not isinstance(epoch, int) or isinstance(epoch, bool):
        raise StateError(f"{name}: its epoch is not an integer: {epoch!r}")
    best = raw.get("best_valid_score")
    cur_step = raw.get("cur_step")
    return RecBoleCheckpoint(
        path=name, model=config["model"], dataset=config["dataset"], epoch=epoch,
        cur_step=None if cur_step is None else int(cur_step),
        best_valid_score=None if best is None else float(best),
        state_dict=dict(raw["state_dict"]), other_parameter=raw.get("other_parameter"),
        optimizer=raw.get("optimizer"), config=config)


def plain_config(values: Mapping[Any, Any], name: str) -> dict[str, Any]:
    """``values`` as plain data: str keys; enums by name, a torch.device as its string, numpy values as Python
    ones, tuples and sets as lists. Anything else is a StateError naming ``name`` and the key."""
    return {str(k): _plain(v, f"{name}: config key {k!r}") for k, v in values.items()}


def _plain(value: Any, where: str) -> Any:
    if isinstance(value, enum.Enum):
        return value.name
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, torch.device):
        return str(value)
    if isinstance(value, (np.generic, np.ndarray)):
        return value.tolist()
    if isinstance(value, Mapping):
        return {str(k): _plain(v, where) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v, where) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted((_plain(v, where) for v in value), key=repr)
    raise StateError(f"{where} holds a {type(value).__name__}, which is not plain data")
