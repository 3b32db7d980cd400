"""Hints name only options of the command that prints them (issue 25, item 8).

Every message a user reads when something fails (the text of a `raise`, of a log call, of a `*_message`
function) that names a CLI option (`--smoke`) is checked against the parsers:
- at the start of a message (`--alpha must be in (0, 1)`): the value the user gave, named; not a hint;
- after `matbench CMD [SUB]` in the same string: CMD SUB must have the option;
- in matbench/commands/X.py: a command that X.py registers must have it;
- in library code (called by many commands): it must be a Hint(option, text) (shown only where the failed
  command has the option), never part of the message.
Then the CLI path: `weights fetch` of a missing file says no --smoke, `inpaint` of the same file does."""

from __future__ import annotations

import argparse
import ast
import functools
import re
from pathlib import Path

import pytest

from matbench import weights as W
from matbench.cli import COMMANDS, build_parser, main
from matbench.errors import Hint, WeightsError

ROOT = Path(__file__).resolve().parents[1]
SOURCES = [p for d in ("matbench", "baselines", "reports") for p in sorted((ROOT / d).rglob("*.py"))]
OPTION = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")
COMMAND = re.compile(r"\bmatbench (" + "|".join(COMMANDS) + r")\b(?: ([a-z]+))?")


def _leaves(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> dict[tuple[str, ...], set[str]]:
    """(command, subcommand...) -> its option strings, for every command and each level of subcommands."""
    out = {path: {o for a in parser._actions for o in a.option_strings}}
    for a in parser._actions:
        if isinstance(a, argparse._SubParsersAction):
            for name, sp in a.choices.items():
                out.update(_leaves(sp, (*path, name)))
    return out


OPTIONS = _leaves(build_parser())
ANY_OPTION = set().union(*OPTIONS.values())


def _module_commands(path: Path) -> set[str]:
    mod = "matbench." + ".".join(path.relative_to(ROOT / "matbench").with_suffix("").parts)
    return {name for name, (m, _) in COMMANDS.items() if m == mod}


LOG_CALLS = {"debug", "info", "warning", "error", "exception", "warn"}
HELP_CALLS = {"add_argument", "add_parser", "Hint", "ArgumentParser"}  # text about their own parser, and hints


@functools.cache
def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), str(path))


def _strings(path: Path) -> list[tuple[int, str]]:
    """(line, text) of each string literal in what a user reads on failure (raised exceptions, log/warnings
    calls, functions named *_message), an f-string's literal parts joined (its values as {}); docstrings,
    parser help and Hint(...) texts left out."""
    messages: list[ast.AST] = []
    skip: set[int] = set()
    for node in ast.walk(_tree(path)):  # one pass over the file; the sub-walks below are small
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                skip.add(id(first.value))
        if isinstance(node, ast.Raise) and node.exc is not None:
            messages.append(node.exc)
        elif isinstance(node, ast.Call):
            name = getattr(node.func, "attr", getattr(node.func, "id", ""))
            if name in HELP_CALLS:
                skip |= {id(n) for n in ast.walk(node)}
            elif name in LOG_CALLS:
                messages.append(node)
        elif isinstance(node, ast.FunctionDef) and node.name.endswith("_message"):
            messages.append(node)
    nodes = {id(n): n for m in messages for n in ast.walk(m) if id(n) not in skip}
    inner = {id(v) for n in nodes.values() if isinstance(n, ast.JoinedStr) for v in n.values}
    out = []
    for node in nodes.values():
        if isinstance(node, ast.JoinedStr):
            out.append((node.lineno, "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in inner:
            out.append((node.lineno, node.value))
    return out


def _problems() -> list[str]:
    bad = []
    for path in SOURCES:
        rel = path.relative_to(ROOT)
        own = _module_commands(path) if rel.parts[:2] == ("matbench", "commands") else set()
        own_options = set().union(*(o for k, o in OPTIONS.items() if k and k[0] in own)) if own else set()
        for line, text in _strings(path):
            for m in OPTION.finditer(text):
                opt = m.group(0)
                if m.start() == 0:  # the message names the option whose value is wrong
                    continue
                cmds = list(COMMAND.finditer(text, 0, m.start()))
                if cmds:
                    c = cmds[-1]
                    key = (c.group(1), c.group(2)) if (c.group(1), c.group(2)) in OPTIONS else (c.group(1),)
                    if key not in OPTIONS or opt not in OPTIONS[key]:
                        bad.append(f"{rel}:{line}: {opt} after `matbench {' '.join(key)}`, which has no {opt}")
                elif own:
                    if opt not in own_options:
                        bad.append(f"{rel}:{line}: {opt} is no option of {', '.join(sorted(own))}")
                else:
                    bad.append(f"{rel}:{line}: {opt} in library text; make it a Hint({opt!r}, ...) or name "
                               "the command (`matbench CMD ... {opt}`)")
    return bad


def test_every_option_a_message_names_belongs_to_the_command_that_prints_it() -> None:
    assert _problems() == []


def test_every_hint_names_an_existing_option() -> None:
    for path in SOURCES:
        for node in ast.walk(_tree(path)):
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "Hint" and node.args:
                opt = node.args[0]
                assert isinstance(opt, ast.Constant) and opt.value in ANY_OPTION, \
                    f"{path.relative_to(ROOT)}:{node.lineno}: Hint option {ast.unparse(opt)} is no CLI option"


def test_the_checker_finds_a_misplaced_hint(tmp_path, monkeypatch) -> None:
    bad = tmp_path / "lib.py"
    bad.write_text('def f():\n    raise ValueError("x missing; use --smoke to run on random weights")\n'
                   'def g():\n    raise ValueError("(matbench data prepare --res 512)")\n'
                   'def h():\n    log.warning("x (matbench weights fetch --smoke)")\n')
    monkeypatch.setattr(__import__(__name__), "SOURCES", [bad])
    monkeypatch.setattr(__import__(__name__), "ROOT", tmp_path)
    got = _problems()
    assert len(got) == 2 and "lib.py:2: --smoke in library text" in got[0] and "weights fetch" in got[1]


def test_hints_follow_the_command(tmp_path, monkeypatch, capsys) -> None:
    e = WeightsError("w missing", hints=[Hint("--smoke", "use --smoke to run on random weights")])
    assert e.for_options(None) == "w missing; use --smoke to run on random weights"
    assert e.for_options({"--smoke", "--dest"}) == "w missing; use --smoke to run on random weights"
    assert e.for_options({"--dest"}) == str(e) == "w missing"
    # the CLI: a missing file, no network
    monkeypatch.setenv("MATBENCH_OFFLINE", "1")
    monkeypatch.setenv("MATBENCH_WEIGHTS", str(tmp_path / "none"))
    monkeypatch.setattr(W, "hub_checkpoints_dir", lambda: tmp_path / "hub")
    monkeypatch.setattr(W, "download", lambda entry, dest=None: (_ for _ in ()).throw(
        WeightsError(W._missing_message(entry), hints=W.SMOKE_HINTS)))
    assert main(["weights", "fetch", "torchvision-alexnet"]) == 2
    err = capsys.readouterr().err
    assert "torchvision-alexnet" in err and "--smoke" not in err


@pytest.mark.parametrize("cmd", ["inpaint", "stats make", "doctor", "eval"])
def test_smoke_hint_where_the_command_has_smoke(cmd) -> None:
    assert "--smoke" in OPTIONS[tuple(cmd.split())]
    assert "--smoke" not in OPTIONS[("weights", "fetch")]
