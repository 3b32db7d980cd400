"""Which code a spec (or the command line) may make matbench import: the trust rule, in one place.

A ``pkg.mod:attr`` reference (a model factory today, a metric later) names code that runs when it is used. It is
imported only when

(a) it is an installed entry point of the relevant group (``matbench.models``): installing a package is trusting it;
(b) the user allowed its module: ``--trust MODULE`` on the command line, or ``MATBENCH_TRUSTED_MODULES``
    (comma-separated); a prefix ``pkg`` trusts ``pkg`` and every ``pkg.sub``;
(c) it is matbench's own code (``matbench.*``, which includes ``matbench.baselines``).

Standard-library modules are never allowed, trusted or not (``os:system`` is not a factory), and an attribute
path may not step through a module (``matbench.io:os.system``). See docs/security.md.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import types
from collections.abc import Collection, Iterable, Iterator
from importlib.metadata import entry_points

from matbench.errors import Hint, SpecError

ENV = "MATBENCH_TRUSTED_MODULES"
OWN_PACKAGES = ("matbench",)  # the package of this distribution (baselines/ and reports/ install inside it)

_cli_trusted: list[str] = []  # --trust values of the running command (see `trusting`)


class TrustError(SpecError):
    """A reference to code that the user has not allowed (or that is never allowed)."""


def _covers(prefix: str, module: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def trusted_modules() -> tuple[str, ...]:
    """Module prefixes allowed now: the command's --trust values, then $MATBENCH_TRUSTED_MODULES."""
    env = [m.strip() for m in os.environ.get(ENV, "").split(",") if m.strip()]
    return tuple(_cli_trusted) + tuple(env)


@contextlib.contextmanager
def trusting(modules: Iterable[str] | None) -> Iterator[None]:
    """Trust these module prefixes for the duration (the CLI wraps each command in it; Python callers may too)."""
    added = [m.strip() for m in (modules or ()) if m and m.strip()]
    _cli_trusted.extend(added)
    try:
        yield
    finally:
        for m in added:
            _cli_trusted.remove(m)


def add_trust_option(parser: argparse.ArgumentParser) -> None:
    """`--trust MODULE` (repeatable) on every command that reads specs or model references."""
    parser.add_argument("--trust", action="append", default=[], metavar="MODULE",
                        help=f"allow a spec or --model to import code from MODULE (and its submodules); "
                             f"repeatable; also ${ENV} (comma list). See docs/security.md")


def is_stdlib(module: str) -> bool:
    return module.partition(".")[0] in sys.stdlib_module_names


def _is_entry_point(module: str, attr: str, group: str | None) -> bool:
    if not group:
        return False
    return any(ep.module == module and ep.attr == attr for ep in entry_points(group=group))


def allow_import(module: str, what: str, source: str, *, attr: str = "", group: str | None = None) -> str:
    """Raise TrustError unless `module` may be imported for `what` (e.g. "model 'pkg.mod:f'") named in `source`
    (a spec file, "the command line"); return why it may: "entry point", "trusted" or "matbench"."""
    if not module or any(not part.isidentifier() for part in module.split(".")):
        raise TrustError(f"{source}: {what}: {module!r} is not a module name")
    top = module.partition(".")[0]
    if is_stdlib(module):
        raise TrustError(f"{source}: {what}: refused: {top!r} is a standard-library module, and standard-library "
                         "callables are never models or metrics (naming code in a spec runs it)")
    if _is_entry_point(module, attr, group):
        return "entry point"
    if any(_covers(p, module) for p in trusted_modules()):
        return "trusted"
    if top in OWN_PACKAGES:
        return "matbench"
    raise TrustError(f"{source}: {what}: refused to import {module!r}: a spec or command line naming code runs it. "
                     f"If you trust it, set {ENV}={top} or install it as a '{group or 'matbench'}' entry point",
                     hints=[Hint("--trust", f"or pass --trust {top}")])


def resolve_reference(ref: str, what: str, source: str, *, group: str | None = None,
                      registered: Collection[object] | None = None) -> object:
    """Import and return the object named by 'pkg.mod:attr' once `allow_import` allows it.

    The attribute path may not step through a module, and the object may not be a standard-library callable
    (both would let a trusted or own module hand out `os.system`). A matbench-own reference that was not
    explicitly trusted must be one of `registered` (when given): matbench's helpers (file writers, say) are not
    factories to call with a spec's options."""
    import importlib

    mod_name, _, attr = ref.partition(":")
    if not mod_name or not attr:
        raise SpecError(f"{source}: {what}: {ref!r} must look like 'package.module:attribute'")
    why = allow_import(mod_name, what, source, attr=attr, group=group)
    try:
        obj: object = importlib.import_module(mod_name)
    except ImportError as e:
        raise SpecError(f"{source}: {what}: cannot import {mod_name!r} ({e})") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise SpecError(f"{source}: {what}: {mod_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
        if isinstance(obj, types.ModuleType):
            raise TrustError(f"{source}: {what}: refused: {attr!r} steps into the module {obj.__name__!r}; "
                             "name the module itself before the ':'")
    defined_in = getattr(obj, "__module__", None) or type(obj).__module__
    if isinstance(defined_in, str) and is_stdlib(defined_in):
        raise TrustError(f"{source}: {what}: refused: {ref!r} is the standard-library callable "
                         f"{defined_in}.{getattr(obj, '__qualname__', type(obj).__qualname__)}, never a model or "
                         "metric")
    if why == "matbench" and registered is not None and not any(obj is r for r in registered):
        raise TrustError(f"{source}: {what}: refused: {ref!r} is not a registered matbench factory; use the "
                         "registered name (matbench models lists them)")
    return obj
