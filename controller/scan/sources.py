"""Where scanned objects come from: YAML/JSON files, directories, stdin.

Every object keeps its origin (file, document number, List item, line) and the line of each
container image, so that findings can point into the manifest (SARIF needs lines). A file
that cannot be read or parsed becomes a :class:`SourceError`; the documents before a YAML
error are kept, and every other file is still read.

Scanned files may come from anyone (a pull request, a chart from the internet), so reading
is bounded: only regular files are read (a symlink to ``/dev/zero`` or a FIFO is refused, not
opened), a file is at most :data:`MAX_FILE_BYTES`, and a YAML document may add at most
:data:`MAX_ALIAS_NODES` nodes through aliases (a 600-byte "billion laughs" expands to 10⁹).
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TextIO

import yaml

__all__ = ["Document", "SourceError", "expand_paths", "read_documents", "read_sources"]

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
STDIN = "<stdin>"
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
MAX_FILE_BYTES = 256 * 1024 * 1024
"""A file (or stdin) larger than this is refused: ``kubectl get -A -o yaml`` of a cluster with
tens of thousands of workloads stays below it."""
MAX_ALIAS_NODES = 1_000_000
"""Nodes a YAML document may gain through aliases (anchors reused), beyond its own."""


class AliasBomb(Exception):
    pass


def _expanded_size(root: yaml.Node, limit: int) -> int:
    """Nodes in ``root`` once every alias is expanded, counted without expanding (each distinct
    node once, memoised); raises :class:`AliasBomb` past ``limit`` or on a node that contains
    itself."""
    sizes: dict[int, int] = {}
    open_: set[int] = set()

    def size(node: yaml.Node) -> int:
        key = id(node)
        known = sizes.get(key)
        if known is not None:
            return known
        if key in open_:
            raise AliasBomb("an alias refers to a node that contains it")
        total = 1
        if isinstance(node, yaml.SequenceNode):
            open_.add(key)
            for child in node.value:
                total += size(child)
        elif isinstance(node, yaml.MappingNode):
            open_.add(key)
            for k, v in node.value:
                total += size(k) + size(v)
        if total > limit:
            raise AliasBomb(f"expands to more than {limit:,} nodes through aliases")
        open_.discard(key)
        sizes[key] = total
        return total

    return size(root)


def _distinct_nodes(root: yaml.Node) -> int:
    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
        elif isinstance(node, yaml.MappingNode):
            stack.extend(x for pair in node.value for x in pair)
    return len(seen)


@dataclass(frozen=True, slots=True)
class SourceError:
    source: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.line else self.source
        return f"{where}: {self.message}"


@dataclass(slots=True)
class Document:
    source: str
    """File path as given (``<stdin>`` for stdin, ``cluster`` for live objects)."""
    index: int | None
    """Document number in the file, from 1."""
    obj: Mapping[str, Any]
    line: int | None = None
    """Line on which the object starts, from 1."""
    item: int | None = None
    """Position in a ``List``'s items, from 0."""
    image_lines: Mapping[str, int] = field(default_factory=dict)
    """Line of each container image, keyed as :class:`policy.workloads.Container` paths."""

    @property
    def where(self) -> str:
        parts = [self.source]
        if self.index is not None:
            parts.append(f"doc {self.index}")
        if self.item is not None:
            parts.append(f"item {self.item}")
        if self.line is not None:
            parts.append(f"line {self.line}")
        return ", ".join(parts)


def expand_paths(paths: Iterable[str]) -> Iterator[str | SourceError]:
    """Files as given, directories walked recursively (YAML and JSON files, sorted, no dot-dirs)."""
    for path in paths:
        if path == "-":
            yield path
        elif os.path.isdir(path):
            found = False
            for root, dirs, files in os.walk(path, onerror=None):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(files):
                    if name.endswith(MANIFEST_SUFFIXES):
                        found = True
                        yield os.path.join(root, name)
            if not found:
                yield SourceError(path, "directory holds no .yaml, .yml or .json files")
        elif os.path.exists(path):
            yield path
        else:
            yield SourceError(path, "no such file or directory")


def _image_lines(node: yaml.Node, prefix: str, out: dict[str, int]) -> None:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if not isinstance(key, yaml.ScalarNode):
                continue
            path = f"{prefix}.{key.value}" if prefix else str(key.value)
            if key.value == "image" and isinstance(value, yaml.ScalarNode):
                out[path] = value.start_mark.line + 1
            elif isinstance(value, yaml.MappingNode | yaml.SequenceNode):
                _image_lines(value, path, out)
    elif isinstance(node, yaml.SequenceNode):
        for i, value in enumerate(node.value):
            if isinstance(value, yaml.MappingNode | yaml.SequenceNode):
                _image_lines(value, f"{prefix}[{i}]", out)


def _split_list(doc: Document) -> list[Document]:
    """A ``List`` (or ``FooList``) with ``items`` becomes one document per item."""
    obj = doc.obj
    items = obj.get("items")
    kind = obj.get("kind")
    if not (isinstance(kind, str) and kind.endswith("List") and isinstance(items, list)):
        return [doc]
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, Mapping):
            continue
        prefix = f"items[{i}]."
        lines = {k[len(prefix) :]: v for k, v in doc.image_lines.items() if k.startswith(prefix)}
        first = min(lines.values(), default=doc.line)
        out.append(Document(doc.source, doc.index, item, first, i, lines))
    return out


def _yaml_documents(source: str, text: str) -> tuple[list[Document], list[SourceError]]:
    docs: list[Document] = []
    errors: list[SourceError] = []
    loader = _Loader(text)
    index = 0
    try:
        while loader.check_node():
            index += 1
            node = loader.get_node()
            if node is None:
                continue
            try:
                _expanded_size(node, _distinct_nodes(node) + MAX_ALIAS_NODES)
            except AliasBomb as bomb:
                errors.append(SourceError(source, f"document {index} {bomb}: skipped", node.start_mark.line + 1))
                continue
            obj = loader.construct_document(node)
            line = node.start_mark.line + 1
            if obj is None:
                continue
            if not isinstance(obj, Mapping):
                errors.append(SourceError(source, f"document {index} is a {type(obj).__name__}, not an object", line))
                continue
            lines: dict[str, int] = {}
            _image_lines(node, "", lines)
            docs.append(Document(source, index, obj, line, None, lines))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        errors.append(
            SourceError(
                source,
                f"invalid YAML in document {max(index, 1)}: {problem}"
                + (f" (column {mark.column + 1})" if mark is not None else ""),
                mark.line + 1 if mark is not None else None,
            )
        )
    except RecursionError:
        errors.append(SourceError(source, f"document {index} is nested too deeply"))
    finally:
        loader.dispose()
    return docs, errors


def _json_documents(source: str, text: str) -> tuple[list[Document], list[SourceError]]:
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        return [], [SourceError(source, f"invalid JSON: {exc.msg} (column {exc.colno})", exc.lineno)]
    except RecursionError:
        return [], [SourceError(source, "JSON is nested too deeply")]
    if not isinstance(obj, Mapping):
        return [], [SourceError(source, f"JSON document is a {type(obj).__name__}, not an object", 1)]
    return [Document(source, 1, obj, 1)], []


def read_documents(source: str, text: str) -> tuple[list[Document], list[SourceError]]:
    """Parse one file's text into objects (``List`` kinds expanded) and errors."""
    if source.endswith(".json") or text.lstrip().startswith("{"):
        docs, errors = _json_documents(source, text)
        if not errors or source.endswith(".json"):
            return [d for doc in docs for d in _split_list(doc)], errors
    docs, errors = _yaml_documents(source, text)
    return [d for doc in docs for d in _split_list(doc)], errors


def read_sources(paths: Iterable[str], stdin: TextIO) -> Iterator[Document | SourceError]:
    """Every object in ``paths`` (``-`` is stdin), then every error, in the order met."""
    for item in expand_paths(paths):
        if isinstance(item, SourceError):
            yield item
            continue
        if item == "-":
            source, text = STDIN, stdin.read(MAX_FILE_BYTES + 1)
            if len(text) > MAX_FILE_BYTES:
                yield SourceError(STDIN, f"larger than {MAX_FILE_BYTES >> 20} MiB: not read")
                continue
        else:
            source = item
            read = _read_file(item)
            if isinstance(read, SourceError):
                yield read
                continue
            text = read
        docs, errors = read_documents(source, text)
        yield from docs
        yield from errors


def _read_file(path: str) -> str | SourceError:
    """A regular file's text. Anything else (a device, a FIFO, a socket, also behind a symlink)
    is refused without reading: opened non-blocking, so that a FIFO cannot hang the scan."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        return SourceError(path, exc.strerror or str(exc))
    with os.fdopen(fd, "rb") as fh:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return SourceError(path, "not a regular file (a device, FIFO or socket): not read")
        if info.st_size > MAX_FILE_BYTES:
            return SourceError(path, f"larger than {MAX_FILE_BYTES >> 20} MiB: not read")
        try:
            raw = fh.read(MAX_FILE_BYTES + 1)
        except OSError as exc:
            return SourceError(path, exc.strerror or str(exc))
    if len(raw) > MAX_FILE_BYTES:
        return SourceError(path, f"larger than {MAX_FILE_BYTES >> 20} MiB: not read")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return SourceError(path, "not UTF-8 text")
