"""What shapezoo reads from disk, checked before it is used: JSON values against a declared shape, stored configs
against their dataclass, tensors against names, shapes, dtypes and finiteness. Every mismatch is one InputError
naming the file and the key, so no reader goes on with a value of the wrong type and fails deep inside.

A shape is written with plain Python values: ``str``, ``int``, ``float`` (finite; ints accepted), ``bool``,
``dict``, ``list``, ``object`` (anything); ``[S]`` a list of S; ``{"key": S, "key?": S}`` an object with those keys
(``?``: may be missing; other keys are allowed); and the helpers below (``Num``, ``Opt``, ``Choice``, ``MapOf``,
``Vec``, ``Names``).
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import InputError, ShapezooError


@dataclass(frozen=True)
class Num:
    """A finite number (an integer when ``integer``) within [lo, hi]."""

    lo: float | None = None
    hi: float | None = None
    integer: bool = False


@dataclass(frozen=True)
class Opt:
    """``shape``, or null."""

    shape: Any


@dataclass(frozen=True)
class Choice:
    """One of the given values."""

    values: tuple


@dataclass(frozen=True)
class MapOf:
    """An object whose keys are strings and whose values all have ``shape``."""

    shape: Any


@dataclass(frozen=True)
class Vec:
    """A list of exactly ``n`` finite numbers."""

    n: int


@dataclass(frozen=True)
class Names:
    """A list of distinct plain member names (no path separators, no leading dot)."""


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "an object",
    }.get(type(value), type(value).__name__)


def _want(shape: Any) -> str:
    if isinstance(shape, Num):
        what = "an integer" if shape.integer else "a finite number"
        bounds = [
            f">= {shape.lo:g}" if shape.lo is not None else "",
            f"<= {shape.hi:g}" if shape.hi is not None else "",
        ]
        return " ".join([what, " and ".join(b for b in bounds if b)]).strip()
    names = {str: "a string", int: "an integer", float: "a finite number", bool: "true or false", dict: "an object"}
    return names.get(shape, "a list" if shape is list or isinstance(shape, list) else "an object")


def check(value: Any, shape: Any, where: str | Path, at: str = "") -> Any:
    """``value`` if it has ``shape``, else InputError(where, "'at' must be ..., got ...")."""
    here = f"'{at}'" if at else "the file"

    def fail(want: str) -> InputError:
        shown = repr(value) if isinstance(value, (int, float, str)) and len(repr(value)) < 40 else _kind(value)
        return InputError(where, f"{here} must be {want}, got {shown}")

    if shape is object:
        return value
    if isinstance(shape, Opt):
        return None if value is None else check(value, shape.shape, where, at)
    if isinstance(shape, Choice):
        if value not in shape.values or isinstance(value, bool) != any(isinstance(v, bool) for v in shape.values):
            raise fail("one of " + ", ".join(repr(v) for v in shape.values))
        return value
    if shape is int:
        shape = Num(integer=True)
    if shape is float:
        shape = Num()
    if isinstance(shape, Num):
        ok = isinstance(value, int) if shape.integer else isinstance(value, (int, float))
        if not ok or isinstance(value, bool) or (isinstance(value, float) and not math.isfinite(value)):
            raise fail(_want(shape))
        if (shape.lo is not None and value < shape.lo) or (shape.hi is not None and value > shape.hi):
            raise fail(_want(shape))
        return value
    if shape in (str, bool, dict, list):
        if not isinstance(value, shape) or (shape is not bool and isinstance(value, bool)):
            raise fail(_want(shape))
        return value
    if isinstance(shape, Names):
        check(value, list, where, at)
        for name in value:
            plain_name(name, where)
        if len(set(value)) != len(value):
            twice = sorted({n for n in value if value.count(n) > 1})
            raise InputError(where, f"{here} lists {', '.join(repr(n) for n in twice[:5])} more than once")
        return value
    if isinstance(shape, Vec):
        if not isinstance(value, list) or len(value) != shape.n:
            raise fail(f"a list of {shape.n} numbers")
        for i, item in enumerate(value):
            check(item, float, where, f"{at}[{i}]")
        return value
    if isinstance(shape, list):
        check(value, list, where, at)
        for i, item in enumerate(value):
            check(item, shape[0], where, f"{at}[{i}]")
        return value
    if isinstance(shape, MapOf):
        check(value, dict, where, at)
        for key, item in value.items():
            check(item, shape.shape, where, f"{at}.{key}" if at else key)
        return value
    if isinstance(shape, dict):
        check(value, dict, where, at)
        for key, item_shape in shape.items():
            name = key.rstrip("?")
            inner = f"{at}.{name}" if at else name
            if name not in value:
                if key.endswith("?"):
                    continue
                raise InputError(where, f"lacks '{inner}'")
            check(value[name], item_shape, where, inner)
        return value
    raise TypeError(f"not a shape: {shape!r}")


def plain_name(name: Any, where: str | Path) -> str:
    """``name`` (read from the file ``where``) checked to be usable as one file name inside a folder: a non-empty
    string without path separators, NUL or a leading dot (so neither '..' nor a hidden file); InputError otherwise."""
    if not isinstance(name, str) or not name or name.startswith(".") or any(c in name for c in "/\\\0"):
        raise InputError(where, f"invalid name {name!r} (names must be plain file names, no '/', '..' or '\\')")
    return name


def _annotation_shape(hint: Any) -> Any:
    """The JSON shape of a config field's type annotation (tuples are stored as lists)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        inner = _annotation_shape(rest[0]) if len(rest) == 1 else object
        return Opt(inner) if type(None) in args else inner
    if origin is typing.Literal:
        return Choice(args)
    if origin is tuple:
        if args and args[-1] is not Ellipsis and all(a in (int, float) for a in args):
            return Vec(len(args))  # e.g. Adam's betas
        return [_annotation_shape(args[0])] if args else list
    if hint in (int, float, str, bool):
        return hint
    return object


def config_from_json(cls: type, data: Any, where: str | Path, at: str = "config", complete: bool = False) -> Any:
    """A config dataclass from its stored JSON (the value at key ``at`` of the file ``where``), each key checked
    against the field's type and the whole against the class's own rules (``__post_init__``); lists become tuples
    again and keys it does not know are ignored. Missing keys take their defaults (configs written by older
    versions), or are an error when ``complete``."""
    check(data, dict, where, at)
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            if complete:
                raise InputError(where, f"lacks '{at}.{f.name}'")
            continue
        value = check(data[f.name], _annotation_shape(hints[f.name]), where, f"{at}.{f.name}")
        kwargs[f.name] = tuple(value) if isinstance(value, list) else value
    try:
        return cls(**kwargs)
    except ShapezooError as exc:
        raise InputError(where, f"invalid config ({exc})") from None


def check_tensor(
    tensors: dict,
    name: str,
    where: str | Path,
    shape: tuple[int | None, ...] | None = None,
    floating: bool = True,
    finite: bool = True,
) -> Any:
    """``tensors[name]`` checked to exist with ``shape`` (None: any size on that axis), a floating dtype and finite
    values; InputError naming the file and the tensor otherwise."""
    t = tensors.get(name)
    if t is None:
        raise InputError(where, f"holds no tensor '{name}'")
    if shape is not None and (t.ndim != len(shape) or any(s is not None and s != n for s, n in zip(shape, t.shape))):
        want = "(" + ", ".join("N" if s is None else str(s) for s in shape) + ")"
        raise InputError(where, f"tensor '{name}' has shape {tuple(t.shape)}, expected {want}")
    kind = getattr(t.dtype, "is_floating_point", None)
    is_float = kind if kind is not None else t.dtype.kind == "f"
    if floating and not is_float:
        raise InputError(where, f"tensor '{name}' has dtype {t.dtype}, expected a floating-point dtype")
    count = t.numel() if hasattr(t, "numel") else t.size  # torch or numpy
    if finite and is_float and count and not bool((t == t).all() and (abs(t) != float("inf")).all()):
        raise InputError(where, f"tensor '{name}' contains NaN or inf")
    return t
