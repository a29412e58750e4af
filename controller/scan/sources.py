"""Where scanned objects come from: YAML/JSON files, directories, stdin.

Every object keeps its origin (file, document number, List item, line) and the line of each
container image, so that findings can point into the manifest (SARIF needs lines). A file
that cannot be read or parsed becomes a :class:`SourceError`; the documents before a YAML
error are kept, and every other file is still read.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TextIO

import yaml

__all__ = ["Document", "SourceError", "expand_paths", "read_documents", "read_sources"]

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
STDIN = "<stdin>"
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


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
            source, text = STDIN, stdin.read()
        else:
            source = item
            try:
                with open(item, encoding="utf-8") as fh:
                    text = fh.read()
            except UnicodeDecodeError:
                yield SourceError(item, "not UTF-8 text")
                continue
            except OSError as exc:
                yield SourceError(item, exc.strerror or str(exc))
                continue
        docs, errors = read_documents(source, text)
        yield from docs
        yield from errors
