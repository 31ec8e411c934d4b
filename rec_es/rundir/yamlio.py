"""The one YAML loader of rec_es (config, check, compare, explain): RecBole's reading rules, bounded.

RecBole reads its files with a PyYAML ``SafeLoader`` that also takes ``1e-3`` as a float; so does this one.
Before any value is built, the composed document is inspected:

* aliases may not expand the document past ``MAX_NODES`` values, nor nest it deeper than ``MAX_DEPTH`` levels
  (a few hundred bytes of ``&a [*a, *a, ...]`` would otherwise become 10**8 values), and an alias may not
  contain itself: each is refused with a ``ConfigError`` naming the file, key and line;
* keys given twice in one mapping are reported (``duplicates``) with both lines: RecBole and PyYAML silently
  keep the last one, so ``rec-es check`` warns;
* keys that YAML does not read as strings (``1:``, ``on:``, ``null:``) are reported (``odd_keys``).

Nothing but the stdlib and PyYAML; no torch, no recbole.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from rec_es.policy.errors import ConfigError, brief
from rec_es.rundir.textio import read_text

#: Most values (scalars, lists, mappings, counted after alias expansion) a document may hold.
MAX_NODES = 100_000
#: Deepest nesting of lists and mappings a document may have.
MAX_DEPTH = 64
#: Largest YAML file rec_es reads (property files are a few kB).
MAX_BYTES = 16 * 1024 * 1024
_STR = "tag:yaml.org,2002:str"
_MERGE = "tag:yaml.org,2002:merge"


class Loader(yaml.SafeLoader):
    """RecBole's loader (``recbole.config.Configurator._build_yaml_loader``): safe, and ``1e-3`` is a float."""


Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+][0-9]+)?
        |[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."),
)


@dataclass(frozen=True)
class Duplicate:
    """A key given twice in one mapping: ``key`` (dotted path), its ``first_line`` and the ``line`` that wins."""

    key: str
    first_line: int
    line: int


@dataclass(frozen=True)
class OddKey:
    """A mapping key YAML does not read as a string: its dotted ``parent`` path, ``line``, ``text`` and type."""

    parent: str
    line: int
    text: str
    type_name: str


@dataclass
class Document:
    """A loaded YAML document: the ``data`` and what the inspection found."""

    data: Any
    duplicates: list[Duplicate] = field(default_factory=list)
    odd_keys: list[OddKey] = field(default_factory=list)


def _child(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


_TYPES = {"tag:yaml.org,2002:int": "a number", "tag:yaml.org,2002:float": "a number",
          "tag:yaml.org,2002:bool": "a boolean (YAML reads yes/no/on/off/true/false as booleans)",
          "tag:yaml.org,2002:null": "null", "tag:yaml.org,2002:timestamp": "a date"}


def _limit_error(source: str, path: str, node: yaml.Node, problem: str) -> ConfigError:
    top = re.split(r"[.\[]", path, maxsplit=1)[0]
    where = f" (key '{top}'; the value at line {node.start_mark.line + 1})" if top else ""
    return ConfigError(f"YAML {problem}{where}; rec_es refuses to expand it. Write the values out, or use "
                       "fewer aliases (*name)", source=source, key=top or None)


def inspect(root: yaml.Node, source: str) -> Document:
    """Check ``root``'s expanded size, depth and cycles; collect duplicate and non-string keys (data unset)."""
    doc = Document(data=None)
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    active: set[int] = set()
    stack: list[tuple[yaml.Node, str, bool]] = [(root, "", False)]
    while stack:
        node, path, done = stack.pop()
        nid = id(node)
        children = _children(node, path)
        if done:
            active.discard(nid)
            size[nid] = 1 + sum(size[id(c)] for c, _ in children)
            depth[nid] = 1 + max((depth[id(c)] for c, _ in children), default=0)
            if size[nid] > MAX_NODES:
                raise _limit_error(source, path, node, f"aliases expand to more than {MAX_NODES:,} values")
            if depth[nid] > MAX_DEPTH:
                raise _limit_error(source, path, node, f"nests more than {MAX_DEPTH} levels deep")
            continue
        if nid in size:
            continue
        if nid in active:
            raise _limit_error(source, path, node, "alias refers to a value that contains it (a recursive alias)")
        active.add(nid)
        stack.append((node, path, True))
        if isinstance(node, yaml.MappingNode):
            _check_keys(node, path, doc)
        for child, child_path in children:
            if id(child) in active:
                raise _limit_error(source, child_path, child, "alias refers to a value that contains it "
                                   "(a recursive alias)")
            if id(child) not in size:
                stack.append((child, child_path, False))
    return doc


def _children(node: yaml.Node, path: str) -> list[tuple[yaml.Node, str]]:
    if isinstance(node, yaml.SequenceNode):
        return [(c, f"{path}[{i}]") for i, c in enumerate(node.value)]
    if isinstance(node, yaml.MappingNode):
        out = []
        for k, v in node.value:
            name = k.value if isinstance(k, yaml.ScalarNode) else "?"
            out.extend(((k, path), (v, _child(path, str(name)))))
        return out
    return []


def _check_keys(node: yaml.MappingNode, path: str, doc: Document) -> None:
    seen: dict[str, int] = {}
    for key, _ in node.value:
        line = key.start_mark.line + 1
        if not isinstance(key, yaml.ScalarNode):
            doc.odd_keys.append(OddKey(path, line, "a list or mapping", "collection"))
            continue
        if key.tag == _MERGE:
            continue
        if key.tag != _STR:
            doc.odd_keys.append(OddKey(path, line, key.value, _TYPES.get(key.tag, key.tag)))
            continue
        if key.value in seen:
            doc.duplicates.append(Duplicate(_child(path, key.value), seen[key.value], line))
        seen[key.value] = line


def loads(text: str, source: str) -> Document:
    """Parse one YAML document from ``text``; ``source`` (a file or ``--set``) names it in every error."""
    loader = Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return Document(data=None)
        doc = inspect(node, source)
        doc.data = loader.construct_document(node)
        return doc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"not valid YAML{where}: {problem}", source=source) from None
    except RecursionError:
        raise ConfigError(f"YAML nests too deeply to read (more than {MAX_DEPTH} levels are refused)",
                          source=source) from None
    except ConfigError:
        raise
    except (ValueError, TypeError, OverflowError) as exc:  # a scalar YAML parses but cannot build (2020-99-99)
        raise ConfigError(f"a value cannot be read ({brief(str(exc))})", source=source) from None
    finally:
        loader.dispose()


def load_file(path: str | os.PathLike[str], what: str = "a YAML file") -> Document:
    """Read ``path`` with ``rec_es.rundir.textio.read_text`` (UTF-8, at most ``MAX_BYTES``) and parse it with ``loads``."""
    return loads(read_text(path, f"{what} (UTF-8 YAML)", max_bytes=MAX_BYTES), str(path))
