"""Load YAML keeping where each value came from, so errors can name file:line:column."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from ctl.errors import ConfigError


class YamlDoc:
    """A parsed YAML document plus its node tree for locating values by path."""

    def __init__(self, path: Path, data: Any, root: yaml.Node | None) -> None:
        self.path = path
        self.data = data
        self._root = root

    def where(self, loc: Sequence[str | int]) -> str:
        """`file:line:col` of the deepest node that `loc` reaches (1-based)."""
        node = self._root
        for key in loc:
            child = _child(node, key)
            if child is None:
                break
            node = child
        if node is None:
            return str(self.path)
        mark = node.start_mark
        return f"{self.path}:{mark.line + 1}:{mark.column + 1}"


def _child(node: yaml.Node | None, key: str | int) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if k.value == str(key):
                return v  # type: ignore[no-any-return]
    if isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
        return node.value[key]  # type: ignore[no-any-return]
    return None


class Yaml12Loader(yaml.SafeLoader):
    """YAML 1.2 booleans (true/false only), as editors' YAML language servers read flows:
    under YAML 1.1 a step's `on:` key would be the boolean True, and `no` a False."""


Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"))


def load(path: Path, loader: type[yaml.SafeLoader] = yaml.SafeLoader) -> YamlDoc:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror}") from e
    return parse(text, path, loader)


def parse(text: str, path: Path, loader: type[yaml.SafeLoader] = yaml.SafeLoader) -> YamlDoc:
    """`text` as if read from `path` (which errors name)."""
    try:
        root = yaml.compose(text, Loader=loader)
        data = yaml.load(text, Loader=loader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise ConfigError(f"{where}: invalid YAML: {e.problem}") from e
    return YamlDoc(path, data, root)
