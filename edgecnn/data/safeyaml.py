"""YAML for files from strangers: PyYAML's safe loader with nesting and alias-expansion limits.

``yaml.safe_load`` never runs code, but it trusts the shape of the document. Two shapes hurt:
deep nesting (``[[[[...`` 5,000 levels) makes the composer recurse into a RecursionError, and
aliases make a document of a few hundred bytes stand for billions of nodes (each level of
``&a [*b, *b, ...]`` multiplies): loading shares the objects, but anything that walks or prints
the result (``str(names)``) expands it, 7 GB and minutes for a 384-byte file. The loader here
counts every node as the aliases expand it and refuses a document past :data:`MAX_NODES`, or
nested deeper than :data:`MAX_DEPTH`, before any object is built.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from edgecnn.errors import UsageError
from edgecnn.lazy import require

MAX_DEPTH = 64          # a data.yaml nests 2 or 3 levels
MAX_NODES = 1_000_000   # nodes after alias expansion; a data.yaml with 1,000 names has ~1,000


def load(text: str, name: str):
    """Parse ``text`` (the content of file ``name``) with the limits of the module docstring.

    Raises:
        UsageError: not valid YAML (with the line), too deep, or too many nodes.
    """
    # Any: a base class taken from a module imported at run time
    yaml: Any = require("yaml", package="pyyaml", purpose="reading YAML files")
    loader = None
    try:
        loader = _loader_class()(text)   # the reader refuses control characters right here
        loader.edgecnn_name = name
        return loader.get_single_data()
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        what = "holds control characters" if isinstance(err, yaml.reader.ReaderError) \
            else "is not valid YAML"
        raise UsageError(f"{name} {what}{where}", "fix the YAML syntax") from None
    except ValueError as err:    # a number over Python's 4,300 digits
        raise UsageError(f"{name}: {str(err).split(';')[0]}", "fix the YAML value") from None
    finally:
        if loader is not None:
            loader.dispose()


@lru_cache(maxsize=1)
def _loader_class():
    # Any: a base class taken from a module imported at run time
    yaml: Any = require("yaml", package="pyyaml", purpose="reading YAML files")

    class LimitedSafeLoader(yaml.SafeLoader):
        """SafeLoader that sizes every node: 1 + the sizes of its children, where an alias
        counts as the whole node it stands for."""

        edgecnn_name = "YAML"

        def __init__(self, stream):
            super().__init__(stream)
            self._depth = 0
            self._sizes: dict[int, int] = {}

        def compose_node(self, parent, index):
            self._depth += 1
            try:
                if self._depth > MAX_DEPTH:
                    raise UsageError(f"{self.edgecnn_name} nests deeper than {MAX_DEPTH} levels",
                                     "a dataset YAML holds a few plain keys and lists")
                node = super().compose_node(parent, index)
            finally:
                self._depth -= 1
            if id(node) not in self._sizes:   # an alias's node was sized when it was anchored
                self._sizes[id(node)] = 1 + sum(self._sizes.get(id(child), 1)
                                                for child in _children(node))
            if self._sizes[id(node)] > MAX_NODES:
                raise UsageError(f"{self.edgecnn_name} expands to more than {MAX_NODES:,} values "
                                 "through its aliases (&anchor / *alias)",
                                 "write the values out, without nested aliases")
            return node

    return LimitedSafeLoader


def _children(node) -> list:
    value = node.value
    if not isinstance(value, list):
        return []
    if value and isinstance(value[0], tuple):   # a mapping: (key, value) pairs
        return [n for pair in value for n in pair]
    return value
