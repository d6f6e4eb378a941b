"""Check ``[model.params]`` against the model family's constructor, before any data is read.

The constructor is the one source of truth: its keyword-only parameters name the settings, their
annotations give the types, and ``Annotated[int, Field(ge=1)]``-style annotations give the ranges. From
them :func:`check_model_params` derives a pydantic model (unknown keys forbidden) and turns its
complaints into one message naming the key, the value found, what is expected and, for a misspelt key,
the closest valid one.
"""
from __future__ import annotations

import functools
import inspect
import logging
import types
import typing
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from ..errors import ConfigError, LexcoderError, did_you_mean

log = logging.getLogger(__name__)

_TYPE_WORDS = {int: "an integer", float: "a number", bool: "true or false", str: "a string (in quotes)",
               list: "a list", dict: "a table"}
_PLURALS = {int: "integers", float: "numbers", bool: "true/false values", str: "strings"}
_BOUND_WORDS = (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<="))


def check_model_params(kind: str, name: str | None, params: dict[str, Any] | None, *,
                       source: str = "the configuration") -> dict[str, Any]:
    """Validate the ``[model]`` settings of family ``kind``; return ``params`` with checked values.

    Parameters
    ----------
    kind : model family (``"tfidf"``, ``"encoder"``, ``"llm"``); encoder/llm import torch here
    name : ``[model] name`` (a pretrained model), or None
    params : ``[model.params]`` (only the keys given are returned, with values as validated)
    source : where the settings come from, for the message (a config file, ``--set``)

    Raises
    ------
    ConfigError
        For an unknown kind or key, a value of the wrong type or outside its range, or a ``name`` for a
        family that takes none; one message lists every problem.
    """
    from .registry import get_model_class
    params = dict(params or {})
    try:
        klass = get_model_class(kind)
    except ConfigError:
        raise
    except LexcoderError as err:  # torch etc. missing: building the model will say so, with the fix
        log.debug("[model.params] not checked: %s", err)
        return params
    fields = declared_fields(klass)
    problems = []
    if name is not None and "name" not in fields:
        problems.append(f'  - [model] name = {name!r}: kind = "{kind}" uses no pretrained model; remove '
                        'name, or choose kind = "encoder" or "llm"')
    if "name" in params and name is not None:
        problems.append("  - name: give the model's name once, as [model] name, not in [model.params]")
    try:
        checked = _params_model(klass).model_validate(params).model_dump(exclude_unset=True)
    except ValidationError as err:
        problems += _explain(err, params, fields)
        checked = params
    if problems:
        valid = ", ".join(sorted(k for k in fields if k != "name"))
        raise ConfigError(f"Invalid model settings in {source} (kind = \"{kind}\"):\n" + "\n".join(problems)
                          + f"\nValid [model.params] keys for kind = \"{kind}\": {valid}.")
    return checked


def declared_fields(klass: type) -> dict[str, tuple[Any, Any]]:
    """``{parameter: (annotation, default)}`` for the keyword-only parameters of ``klass`` and its bases.

    A subclass's declaration wins over its base's (as it does when the subclass forwards ``**params``).
    """
    fields: dict[str, tuple[Any, Any]] = {}
    for k in klass.__mro__:
        if "__init__" not in vars(k):
            continue
        init = vars(k)["__init__"]
        try:
            hints = typing.get_type_hints(init, include_extras=True)
        except Exception:  # noqa: BLE001 - an annotation that cannot be resolved checks as Any
            hints = {}
        for p in inspect.signature(init).parameters.values():
            if p.kind == p.KEYWORD_ONLY and p.name not in fields:
                default = ... if p.default is p.empty else p.default
                fields[p.name] = (hints.get(p.name, Any), default)
    return fields


@functools.lru_cache(maxsize=None)
def _params_model(klass: type) -> type[BaseModel]:
    """The pydantic model of ``klass``'s parameters (built once per class)."""
    return create_model(f"{klass.__name__}Params", __config__=ConfigDict(extra="forbid"),
                        **declared_fields(klass))


def _explain(err: ValidationError, params: dict[str, Any], fields: dict[str, tuple[Any, Any]]) -> list[str]:
    """One line per offending key: the value found and what is expected (or the closest valid key)."""
    lines, seen = [], set()
    for e in err.errors():
        key = str(e["loc"][0]) if e["loc"] else ""
        if key in seen:
            continue  # a union reports one error per alternative; the expectation covers them all
        seen.add(key)
        if e["type"] == "extra_forbidden":
            hint = did_you_mean(key, [k for k in fields if k != "name"]) or " (not a parameter of this kind)"
            lines.append(f"  - {key} = {params[key]!r}: unknown key{hint}")
        elif key in fields:
            lines.append(f"  - {key} = {params.get(key)!r}: expected {describe(fields[key][0])}")
        else:
            lines.append(f"  - {key}: {e['msg']}")
    return lines


def describe(annotation: Any) -> str:
    """An annotation in words: ``Annotated[int, Field(ge=1)] | None`` -> ``"an integer >= 1"``."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        base, *meta = typing.get_args(annotation)
        return " ".join([describe(base), " and ".join(_bounds(meta))]).strip()
    if origin in (typing.Union, types.UnionType):
        words = [describe(a) for a in typing.get_args(annotation) if a is not type(None)]
        return " or ".join(dict.fromkeys(words))
    if origin is typing.Literal:
        return " or ".join(f'"{v}"' if isinstance(v, str) else repr(v) for v in typing.get_args(annotation))
    if origin is not None:
        args = typing.get_args(annotation)
        inner = f" of {_PLURALS.get(args[0], 'values')}" if origin is list and args else ""
        return _TYPE_WORDS.get(origin, str(origin)) + inner
    if annotation is Any:
        return "any value"
    return _TYPE_WORDS.get(annotation, getattr(annotation, "__name__", str(annotation)))


def _bounds(meta: list[Any]) -> list[str]:
    """``[">= 1"]`` from annotated-types constraints, bare or inside a pydantic ``Field``."""
    constraints = [m for item in meta for m in getattr(item, "metadata", [item])]
    return [f"{symbol} {getattr(c, attr)}" for c in constraints for attr, symbol in _BOUND_WORDS
            if getattr(c, attr, None) is not None]
