"""Pydantic's validation errors in a volunteer's words: field names, suggestions, kinds."""

from __future__ import annotations

import datetime
from typing import Any

from pydantic import BaseModel

from bot.manifest.model import Manifest


def field_name(loc: tuple[int | str, ...]) -> str:
    """`('xsas', 1, 'commits', 0)` -> `xsas[1].commits[0]`."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f".{part}" if out else str(part)
    return out


def suggestion(loc: tuple[int | str, ...]) -> str:
    keys = keys_at(loc[:-1])
    if not keys:
        return ""
    import difflib  # only on this error path

    close = difflib.get_close_matches(str(loc[-1]), keys, n=1)
    if close:
        return f" (did you mean `{close[0]}`?)"
    return " (known keys: " + ", ".join(f"`{k}`" for k in keys) + ")"


def keys_at(loc: tuple[int | str, ...]) -> list[str]:
    """The keys the model allows in the mapping at `loc`."""
    model: type[BaseModel] = Manifest
    for part in loc:
        if isinstance(part, int):
            continue
        info = model.model_fields.get(part)
        inner = model_in(info.annotation) if info is not None else None
        if inner is None:
            return []
        model = inner
    return list(model.model_fields)


def model_in(annotation: Any) -> type[BaseModel] | None:
    import typing

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = model_in(arg)
        if found is not None:
            return found
    return None


def is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def is_scalar(value: object) -> bool:
    """A value YAML typed as something other than text, though the user may have meant text."""
    return isinstance(value, int | float | datetime.date)


def kind_of(value: object) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true/false"
    if is_number(value):
        return "a number"
    if isinstance(value, str):
        return f"the text {value!r}"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, datetime.date):
        return "a date"
    return f"a {type(value).__name__}"


def plain(node: Any) -> Any:
    """ruamel's round-trip types as plain Python, so the model holds plain str and int.

    A container met twice (a YAML alias shares the node it names) is converted once and shared
    again: copying it at every use is what turns a few hundred bytes of nested aliases into
    billions of values. The loader refuses aliases before this; this keeps the copy linear in
    what it is given even so.
    """
    done: dict[int, Any] = {}  # id of a container in `node` -> its copy; `node` outlives it

    def convert(value: Any) -> Any:
        if isinstance(value, dict | list):
            if id(value) in done:
                return done[id(value)]
            if isinstance(value, dict):
                mapping: dict[Any, Any] = {}
                done[id(value)] = mapping
                mapping.update((convert(k), convert(v)) for k, v in value.items())
                return mapping
            items: list[Any] = []
            done[id(value)] = items
            items.extend(convert(v) for v in value)
            return items
        if value is None or isinstance(value, bool):
            return value
        for kind in (str, int, float):
            if isinstance(value, kind):
                return kind(value)
        return value

    return convert(node)
