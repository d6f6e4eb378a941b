"""A model family's settings, read from its class: validation, messages and documentation.

The fields of a :func:`~lexcoder.models.base.model_family` class are the one source of truth: their
annotations give the types, ``Annotated[int, Field(ge=1, description=...)]`` the ranges and the words.
From them this module derives

- a pydantic model per family (unknown keys forbidden) that checks settings, both where a config file is
  read (:func:`check_model_params`, before any data is read) and where a model is fitted
  (:func:`check_settings`, scikit-learn style: the constructor stores, ``fit`` validates);
- one message per problem naming the key, the value found, what is expected and, for a misspelt key, the
  closest valid one;
- :func:`setting_docs`, from which the commented example config (``lexcoder init``), the README's parameter
  tables and each family's docstring are written.
"""
from __future__ import annotations

import dataclasses
import functools
import inspect
import logging
import textwrap
import types
import typing
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from ..errors import ConfigError, InvalidSettingError, LexcoderError, did_you_mean

log = logging.getLogger(__name__)

_TYPE_WORDS = {int: "an integer", float: "a number", bool: "true or false", str: "a string (in quotes)",
               list: "a list", dict: "a table"}
_PLURALS = {int: "integers", float: "numbers", bool: "true/false values", str: "strings"}
_BOUND_WORDS = (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<="))
REQUIRED = ...  # the default of a setting without one


@dataclass(frozen=True)
class SettingDoc:
    """One setting of a model family, for documentation.

    Attributes
    ----------
    name : the key (``[model.params]`` key, constructor argument)
    expected : the type and range in words (``"an integer >= 1"``)
    default : the default value (None: unset)
    description : what it does (from the field's ``Field(description=...)``)
    """

    name: str
    expected: str
    default: Any
    description: str


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
        For an unknown kind or key, a value of the wrong type or outside its range, a conflict between
        settings, or a ``name`` for a family that takes none; one message lists every problem.
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
    checked, invalid = _validate(klass, params, strict=False)
    problems += [f"  - {line}" for line in invalid]
    if not invalid:
        given = {**checked, **({"name": name} if name is not None and "name" in fields else {})}
        problems += [f"  - {line}" for line in klass(**given)._setting_conflicts()]
    if problems:
        valid = ", ".join(sorted(k for k in fields if k != "name"))
        raise ConfigError(f"Invalid model settings in {source} (kind = \"{kind}\"):\n" + "\n".join(problems)
                          + f"\nValid [model.params] keys for kind = \"{kind}\": {valid}.")
    return checked


def check_settings(model: Any) -> None:
    """Check a model's settings before it is fitted (types, ranges, conflicts).

    Strict about types (``C = "10"`` is not a number here, as the model would use the string as given).

    Raises
    ------
    InvalidSettingError
        Listing every problem, e.g. ``TfidfClassifier: ngram_max = 0: expected an integer >= 1``.
    """
    klass = type(model)
    _, problems = _validate(klass, model.get_params(deep=False), strict=True)
    if not problems:
        problems = model._setting_conflicts()
    if problems:
        raise InvalidSettingError(f"Invalid settings of {klass.__name__}:\n"
                                  + "\n".join(f"  - {p}" for p in problems))


def _validate(klass: type, params: dict[str, Any], *, strict: bool) -> tuple[dict[str, Any], list[str]]:
    """(validated values of the keys given, one line per problem)."""
    try:
        checked = settings_model(klass).model_validate(params, strict=strict).model_dump(exclude_unset=True)
    except ValidationError as err:
        return params, _explain(err, params, declared_fields(klass))
    return checked, []


def declared_fields(klass: type) -> dict[str, tuple[Any, Any]]:
    """``{setting: (annotation, default)}`` of a model family (``REQUIRED`` for no default).

    For a :func:`~lexcoder.models.base.model_family` class, its dataclass fields (their annotations
    resolved in the module that declares each); otherwise the keyword-only parameters of ``__init__``.
    """
    if dataclasses.is_dataclass(klass):
        hints = typing.get_type_hints(klass, include_extras=True)
        return {f.name: (hints.get(f.name, Any), REQUIRED if f.default is dataclasses.MISSING else f.default)
                for f in dataclasses.fields(klass) if f.init}
    fields: dict[str, tuple[Any, Any]] = {}
    try:
        hints = typing.get_type_hints(klass.__init__, include_extras=True)
    except Exception:  # noqa: BLE001 - an annotation that cannot be resolved checks as Any
        hints = {}
    for p in inspect.signature(klass.__init__).parameters.values():
        if p.kind == p.KEYWORD_ONLY:
            fields[p.name] = (hints.get(p.name, Any), REQUIRED if p.default is p.empty else p.default)
    return fields


@functools.lru_cache(maxsize=None)
def settings_model(klass: type) -> type[BaseModel]:
    """The pydantic model of ``klass``'s settings (built once per class; unknown keys forbidden)."""
    return create_model(f"{klass.__name__}Settings", __config__=ConfigDict(extra="forbid"),
                        **declared_fields(klass))


def setting_docs(klass: type) -> list[SettingDoc]:
    """Every setting of ``klass``, in declaration order (base class settings first)."""
    docs = []
    for key, (annotation, default) in declared_fields(klass).items():
        docs.append(SettingDoc(name=key, expected=describe(annotation), default=default,
                               description=_description(annotation)))
    return docs


def parameters_section(klass: type) -> str:
    """A numpydoc ``Parameters`` section written from the settings (for the class docstring)."""
    lines = ["Parameters", "----------"]
    for doc in setting_docs(klass):
        default = "required" if doc.default is REQUIRED else f"default {doc.default!r}"
        lines.append(f"{doc.name} : {doc.expected}, {default}")
        lines += textwrap.wrap(doc.description, width=96, initial_indent="    ", subsequent_indent="    ")
    return "\n".join(lines)


def _description(annotation: Any) -> str:
    """The ``description`` of the pydantic ``Field`` inside an ``Annotated`` annotation ("" if none)."""
    for item in typing.get_args(annotation)[1:] if typing.get_origin(annotation) is typing.Annotated else ():
        if getattr(item, "description", None):
            return str(item.description)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            if _description(arg):
                return _description(arg)
    return ""


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
            lines.append(f"{key} = {params[key]!r}: unknown key{hint}")
        elif key in fields:
            lines.append(f"{key} = {params.get(key)!r}: expected {describe(fields[key][0])}")
        else:
            lines.append(f"{key}: {e['msg']}")
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
