"""Notebook parameters: profiles (notebooks/params/<profile>.yml) checked against each notebook's
``parameters`` cell before anything runs.

A profile file maps notebook names to parameter values::

    00_model_zoo:
      policy: tiny-llama
      max_new_tokens: 8

Each notebook declares its parameters, with a type annotation, in the cell tagged ``parameters``;
unknown names and values of the wrong type fail here with one line.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

PROFILES = ("smoke", "default", "paper")
_EXPONENT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+")
_TYPES = {"int": int, "float": float, "str": str, "bool": bool, "list": list, "dict": dict, "None": type(None)}


class ParameterError(ValueError):
    """A bad profile, notebook name or parameter."""


@dataclass(frozen=True)
class Declared:
    """One parameter of a notebook: its default and the types it accepts."""

    name: str
    default: Any
    types: tuple[type, ...]

    def accepts(self, value: Any) -> bool:
        if isinstance(value, bool) and bool not in self.types:
            return False  # bool is an int subclass; True is not a valid max_new_tokens
        if isinstance(value, int) and not isinstance(value, bool) and float in self.types:
            return True
        return isinstance(value, self.types)

    @property
    def type_name(self) -> str:
        return " | ".join("None" if t is type(None) else t.__name__ for t in self.types)


def _annotation_types(node: ast.expr | None, default: Any) -> tuple[type, ...]:
    if node is None:
        return (type(default),) if default is not None else tuple(_TYPES.values())
    names = [n for n in ast.unparse(node).replace(" ", "").split("|")]
    types = []
    for name in names:
        base = name.split("[")[0]
        if base not in _TYPES:
            raise ParameterError(f"parameter annotation {ast.unparse(node)!r} uses {base!r}; allowed: {', '.join(_TYPES)}")
        types.append(_TYPES[base])
    return tuple(types)


def declared_parameters(notebook: Path) -> dict[str, Declared]:
    """The parameters a notebook declares in its cell tagged ``parameters``."""
    nb = json.loads(Path(notebook).read_text())
    cells = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(cells) != 1:
        raise ParameterError(f"{Path(notebook).name} must have exactly one cell tagged 'parameters', found {len(cells)}")
    source = "".join(cells[0]["source"])
    declared = {}
    for stmt in ast.parse(source).body:
        if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
            name, value, annotation = stmt.target.id, stmt.value, stmt.annotation
        elif isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
            name, value, annotation = stmt.targets[0].id, stmt.value, None
        else:
            continue
        default = ast.literal_eval(value) if value is not None else None
        declared[name] = Declared(name, default, _annotation_types(annotation, default))
    return declared


def load_profile(profile: str, params_dir: Path, notebooks: list[str]) -> dict[str, dict[str, Any]]:
    """Read ``params_dir/<profile>.yml``: {notebook name: {parameter: value}}; checks names only."""
    if profile not in PROFILES:
        raise ParameterError(f"unknown profile {profile!r}; profiles: {', '.join(PROFILES)}")
    path = Path(params_dir) / f"{profile}.yml"
    if not path.is_file():
        raise ParameterError(f"profile file {path} is missing")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ParameterError(f"malformed params file {path}{where}: {getattr(err, 'problem', err)}") from None
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise ParameterError(f"params file {path} must map notebook names to mappings of parameters")
    unknown = sorted(set(data) - set(notebooks))
    if unknown:
        raise ParameterError(f"params file {path} names unknown notebooks {unknown}; notebooks: {', '.join(notebooks)}")
    return {name: dict(data.get(name, {})) for name in notebooks}


def check_parameters(notebook: Path, values: dict[str, Any]) -> dict[str, Any]:
    """Check ``values`` against the notebook's declared parameters; return them unchanged."""
    declared = declared_parameters(notebook)
    name = Path(notebook).stem
    for key, value in values.items():
        if key not in declared:
            raise ParameterError(f"{name} has no parameter {key!r}; parameters: {', '.join(declared)}")
        if not declared[key].accepts(value):
            raise ParameterError(f"parameter {key!r} of {name} must be {declared[key].type_name}, "
                                 f"got {type(value).__name__} {value!r}")
    return values


def parse_cli_value(text: str) -> Any:
    """A ``-p KEY VALUE`` value as YAML (3 -> int, '["a"]' -> list, cuda -> str, 1e-2 -> float)."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if isinstance(value, str) and _EXPONENT.fullmatch(value):  # YAML 1.1 reads 1e-2 (no dot) as text
        return float(value)
    return value
