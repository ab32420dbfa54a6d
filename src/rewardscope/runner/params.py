"""Notebook parameters: profiles (notebooks/params/<profile>.yml) checked against each notebook's
``parameters`` cell before anything runs.

A profile file maps notebook names to parameter values::

    00_model_zoo:
      policy: tiny-llama
      max_new_tokens: 8

Sections named in ``EXTRA_SECTIONS`` (``audit:``) hold the parameters of notebooks that are not chapters of the
book (``rewardscope audit`` reads them); the book ignores them.

Each notebook declares its parameters, with a type annotation, in the cell tagged ``parameters``;
unknown names and values of the wrong type fail here with one line.
"""

from __future__ import annotations

import ast
import io
import json
import os
import re
import tokenize
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

PROFILES = ("smoke", "default", "paper", "replica")
AUDIT = "audit"  # the profile section and notebook stem of ``rewardscope audit``; not a chapter
EXTRA_SECTIONS = (AUDIT,)  # profile sections for notebooks outside the book's chapters (notebooks/audit/audit.ipynb)
_EXPONENT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+")
_TYPES = {"int": int, "float": float, "str": str, "bool": bool, "list": list, "dict": dict, "None": type(None)}


class ParameterError(ValueError):
    """A bad profile, notebook name or parameter."""


@dataclass(frozen=True)
class Declared:
    """One parameter of a notebook: its default, the types it accepts and its help (the line's comment)."""

    name: str
    default: Any
    types: tuple[type, ...]
    help: str = ""

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
    comments, above = _comments(source)
    declared = {}
    for stmt in ast.parse(source).body:
        if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
            name, value, annotation = stmt.target.id, stmt.value, stmt.annotation
        elif isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
            name, value, annotation = stmt.targets[0].id, stmt.value, None
        else:
            continue
        default = ast.literal_eval(value) if value is not None else None
        help_text = comments.get(stmt.end_lineno) or above.get(stmt.lineno - 1, "")
        declared[name] = Declared(name, default, _annotation_types(annotation, default), help_text)
    return declared


def _comments(source: str) -> tuple[dict[int, str], dict[int, str]]:
    """A parameter's help text: the comment that ends its line or, for a long line, a comment line just above it.
    Returns both by line number (without the '#')."""
    trailing, whole = {}, {}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            (whole if tok.line.lstrip().startswith("#") else trailing)[tok.start[0]] = tok.string.lstrip("#").strip()
    return trailing, whole


def profile_path(profile: str | Path, params_dir: Path) -> Path:
    """A profile's YAML file: a name in ``params_dir`` (smoke, default, paper, replica) or a path to a file in
    the same schema (a user's own profile needs no edit inside the package)."""
    text = str(profile)
    if text in PROFILES:
        return Path(params_dir) / f"{text}.yml"
    if text.endswith((".yml", ".yaml")) or os.sep in text:
        path = Path(text).expanduser()
        if not path.is_file():
            raise ParameterError(f"profile file {text!r} does not exist")
        return path.resolve()
    raise ParameterError(f"unknown profile {text!r}; profiles: {', '.join(PROFILES)}, or a path to a .yml file")


def profile_label(profile: str | Path) -> str:
    """A profile's short name, for build folders and reports: the name, or the file's stem."""
    text = str(profile)
    return text if text in PROFILES else Path(text).stem


def load_profile(profile: str | Path, params_dir: Path, notebooks: list[str]) -> dict[str, dict[str, Any]]:
    """Read a profile (see :func:`profile_path`): {notebook name: {parameter: value}}; checks names only."""
    path = profile_path(profile, params_dir)
    if not path.is_file():
        raise ParameterError(f"profile file {path} is missing")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError:
        raise ParameterError(f"profile file {path} is not UTF-8 text") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ParameterError(f"malformed params file {path}{where}: {getattr(err, 'problem', err)}") from None
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise ParameterError(f"params file {path} must map notebook names to mappings of parameters")
    unknown = sorted(set(data) - set(notebooks) - set(EXTRA_SECTIONS))
    if unknown:
        raise ParameterError(f"params file {path} names unknown notebooks {unknown}; notebooks: {', '.join(notebooks)}")
    return {name: dict(data.get(name, {})) for name in notebooks}


def check_parameters(notebook: Path, values: dict[str, Any], *, environment: bool = False) -> dict[str, Any]:
    """Check ``values`` against the notebook's declared parameters; return them unchanged.

    Names and types come from the notebook's ``parameters`` cell; values (bounds, choices, list lengths, spec
    syntax, reward-option keys) from :mod:`rewardscope.runner.param_rules`, applied to the values the kernel will see
    (the defaults overridden by ``values``). ``environment`` also checks that every model and data spec can be
    loaded here and that the device exists (the runner does, before a kernel starts; schema tests do not).
    """
    from .param_rules import RuleError, check_environment, check_values

    declared = declared_parameters(notebook)
    name = Path(notebook).stem
    for key, value in values.items():
        if key not in declared:
            raise ParameterError(f"{name} has no parameter {key!r}; parameters: {', '.join(declared)}")
        if not declared[key].accepts(value):
            raise ParameterError(f"parameter {key!r} of {name} must be {declared[key].type_name}, "
                                 f"got {type(value).__name__} {value!r}")
    effective = {key: d.default for key, d in declared.items()} | values
    try:
        check_values(effective, name)
        if environment:
            check_environment(effective)
    except RuleError as err:
        raise ParameterError(f"{name}: {err}") from None
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
