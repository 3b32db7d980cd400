"""Declared model options: name, type, default, help (and allowed values), checked before a model is built.

Every built-in model declares its options with `register_model(..., options=(Option(...), ...))`; a plugin
declares them as an attribute of its factory (`make_model.options = (Option(...), ...)`, like `.requires`).
`check_options` refuses an unknown option (naming the model and the option, with "did you mean") or a value of
the wrong type, so a typo such as `radiuss = 25` fails at spec validation, `--dry-run` and `matbench inpaint`
instead of silently running with the default. `matbench models NAME` lists the options.

A plugin without a declaration is still accepted: option names are checked against its factory's signature
when it has no `**kwargs`; with `**kwargs` nothing can be checked, and a warning says so once per model.
"""

from __future__ import annotations

import difflib
import inspect
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from matbench.errors import SpecError

log = logging.getLogger(__name__)

TYPES = ("bool", "int", "float", "str", "path")
# Set by matbench itself (the runner and `matbench inpaint` pass the device to every model that takes it).
FRAMEWORK_OPTIONS = ("device",)
_WARNED: set[str] = set()


@dataclass(frozen=True)
class Option:
    """One model option. `type` is one of TYPES; `choices` restricts the value; default None means optional."""

    name: str
    type: str
    default: Any
    help: str
    choices: tuple[Any, ...] | None = None

    def __post_init__(self) -> None:
        if self.type not in TYPES:
            raise ValueError(f"option {self.name!r}: type must be one of {TYPES}, got {self.type!r}")

    def check(self, value: Any) -> str | None:
        """None if `value` fits, else what is wrong (for the error message)."""
        if value is None and self.default is None:
            return None
        ok = {
            "bool": lambda v: isinstance(v, bool),
            "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
            "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
            "str": lambda v: isinstance(v, str),
            "path": lambda v: isinstance(v, (str, os.PathLike)),
        }[self.type](value)
        if not ok:
            want = {"bool": "true or false", "int": "an integer", "float": "a number", "str": "a string",
                    "path": "a path (string)"}[self.type]
            return f"must be {want}, got {value!r}"
        if self.choices is not None and value not in self.choices:
            return f"must be one of {', '.join(map(str, self.choices))}, got {value!r}"
        return None

    def parse(self, text: str) -> Any:
        """A command-line value (`--option KEY=VALUE`) as this option's type (SpecError if it does not parse)."""
        if self.type == "bool":
            low = text.strip().lower()
            if low in ("true", "1", "yes", "on"):
                return True
            if low in ("false", "0", "no", "off"):
                return False
            raise SpecError(f"option {self.name}: must be true or false, got {text!r}")
        if self.type in ("int", "float"):
            try:
                return int(text) if self.type == "int" else float(text)
            except ValueError:
                raise SpecError(f"option {self.name}: must be {'an integer' if self.type == 'int' else 'a number'}, "
                                f"got {text!r}") from None
        return text

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type, "default": self.default, "help": self.help,
                "choices": list(self.choices) if self.choices is not None else None}


def as_options(opts: Any, where: str = "options") -> tuple[Option, ...]:
    """Options given as Option objects, or as module data {name: {type, default, help, choices}}."""
    if isinstance(opts, Mapping):
        try:
            return tuple(Option(name, d["type"], d.get("default"), d.get("help", ""),
                                tuple(d["choices"]) if d.get("choices") is not None else None)
                         for name, d in opts.items())
        except (KeyError, TypeError, ValueError) as e:
            raise SpecError(f"{where}: bad option declaration ({e})") from None
    if not isinstance(opts, (tuple, list)) or not all(isinstance(o, Option) for o in opts):
        raise SpecError(f"{where} must be a tuple of matbench.models.options.Option or a dict "
                        "{name: {type, default, help, choices}}")
    return tuple(opts)


def declared(factory: Callable[..., Any]) -> tuple[Option, ...] | None:
    """The options a factory declares (attribute `options`), or None."""
    opts = getattr(factory, "options", None)
    if opts is None:
        return None
    return as_options(opts, f"{getattr(factory, '__qualname__', factory)}.options")


def _unknown(model: str, key: str, names: Sequence[str]) -> str:
    close = difflib.get_close_matches(key, list(names), n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    if not close and key in ("weights", "smoke"):
        hint = " (it runs without weights)"
    known = ", ".join(sorted(names)) or "none"
    return f"model {model!r} has no option {key!r}{hint}; its options: {known} (see `matbench models {model}`)"


def check_options(model: str, schema: Sequence[Option] | None, options: Mapping[str, Any],
                  factory: Callable[..., Any] | None = None, prefix: str = "") -> None:
    """Refuse unknown or ill-typed options (SpecError "<prefix><key>: ..."); `prefix` is e.g. "models[0].options."."""
    if schema is None:
        _check_undeclared(model, options, factory, prefix)
        return
    by_name = {o.name: o for o in schema}
    for key, value in options.items():
        if key in FRAMEWORK_OPTIONS and key not in by_name:
            continue
        opt = by_name.get(key)
        if opt is None:
            raise SpecError(_where(prefix, key) + _unknown(model, key, list(by_name)))
        problem = opt.check(value)
        if problem:
            raise SpecError(f"{_where(prefix, key)}model {model!r} option {key!r} {problem}")


def _where(prefix: str, key: str) -> str:
    return f"{prefix}{key}: " if prefix else ""


def _check_undeclared(model: str, options: Mapping[str, Any], factory: Callable[..., Any] | None,
                      prefix: str) -> None:
    extra = [k for k in options if k not in FRAMEWORK_OPTIONS]
    if factory is None or not extra:
        return
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        params = {}
    if params and not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        names = [n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        for key in extra:
            if key not in names:
                raise SpecError(_where(prefix, key) + _unknown(model, key, [n for n in names if n != "device"]))
        return
    if model not in _WARNED:
        _WARNED.add(model)
        log.warning("model %s declares no options (factory.options) and takes **kwargs, so its options %s cannot be "
                    "checked: a misspelt option would be ignored", model, ", ".join(sorted(extra)))


def parse_cli_options(model: str, schema: Sequence[Option] | None, items: Mapping[str, str],
                      fallback: Callable[[str], Any]) -> dict[str, Any]:
    """`--option KEY=VALUE` strings typed by the schema (unknown keys keep the fallback parse; checked later)."""
    by_name = {o.name: o for o in schema or ()}
    out = {}
    for k, v in items.items():
        try:
            out[k] = by_name[k].parse(v) if k in by_name else fallback(v)
        except SpecError as e:
            raise SpecError(f"--option {k}={v}: model {model!r} {e}") from None
    return out


def format_options(schema: Sequence[dict[str, Any]] | None) -> list[str]:
    """Lines for `matbench models NAME`, from `Option.to_json()` dicts (None: not declared)."""
    if schema is None:
        return ["    options: not declared (the plugin's factory has no .options)"]
    if not schema:
        return ["    options: none"]
    lines = ["    options:"]
    width = max(len(o["name"]) for o in schema)
    for o in schema:
        kind = o["type"] if o["choices"] is None else " | ".join(map(str, o["choices"]))
        lines.append(f"      {o['name']:<{width}}  {kind}, default {o['default']!r}: {o['help']}")
    return lines
