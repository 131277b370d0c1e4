"""Write the reference pages that are generated from the code, beside this script:

- ``train-settings.md``, from the settings that ``src/ganforge/config.py`` declares;
- ``commands/*.md``, one page per ``ganforge`` command and an index, from the argument parser
  of ``src/ganforge/cli.py`` (the same parser ``--help`` prints).

Run ``python docs/reference/generate.py`` after adding or changing a setting, a command or a
flag. tests/test_settings.py and tests/test_docs.py fail while a file differs from what this
writes.
"""

from __future__ import annotations

import argparse
import contextlib
import io
from pathlib import Path

from ganforge.cli import build_parser, main
from ganforge.config import REFERENCE_COMMAND, settings_reference_markdown

HERE = Path(__file__).resolve().parent
COMMANDS = HERE / "commands"
GENERATED = f"<!-- Generated from src/ganforge/cli.py by `{REFERENCE_COMMAND}`; do not edit. -->"
#: The exit statuses of every command (``ganforge.cli.main``).
EXIT_STATUSES = (
    ("0", "done"),
    ("2", "bad input: one line per problem, `ganforge: error: …`, before any work starts"),
    ("130, 143", "`train` stopped by SIGINT (Ctrl-C) or SIGTERM, after writing a checkpoint"),
    ("141", "the reader of the output went away (`ganforge … | head`)"),
)


def _cell(text: str) -> str:
    """``text`` made safe for one cell of a Markdown table."""
    return text.replace("|", "\\|").replace("\n", " ")


def _commands(parser: argparse.ArgumentParser) -> list[tuple[argparse.ArgumentParser, str]]:
    """Every leaf command under ``parser`` (``train``, ``evaluator train``, …) with its one-line
    help, in the order ``--help`` lists them."""
    found = []
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
        for name, sub in action.choices.items():
            nested = _commands(sub)
            found += nested or [(sub, helps.get(name, ""))]
    return found


def page_name(command: argparse.ArgumentParser) -> str:
    """``ganforge evaluator train`` → ``evaluator-train.md``."""
    return "-".join(command.prog.split()[1:]) + ".md"


def _synopsis(command: argparse.ArgumentParser) -> str:
    positionals = [a for a in command._actions if not a.option_strings]
    words = [command.prog]
    for action in positionals:
        metavar = (action.metavar or action.dest).upper()
        words.append(f"{metavar} [{metavar} ...]" if action.nargs == "+" else metavar)
    return " ".join([*words, "[options]"])


def _group_table(command: argparse.ArgumentParser, group) -> list[str]:
    """The Markdown lines of one argument group: its title, what it is about, and a row per
    argument with its invocation as ``--help`` shows it (``--mode {linear,slerp}``) and help."""
    formatter = argparse.HelpFormatter(command.prog)
    actions = [
        a
        for a in group._group_actions
        if a.help is not argparse.SUPPRESS and not isinstance(a, argparse._HelpAction)
    ]
    if not actions:
        return []
    positional = not actions[0].option_strings
    rows = []
    for action in actions:
        if positional:
            invocation = (action.metavar or action.dest).upper()
        else:
            invocation = formatter._format_action_invocation(action)
        meaning = formatter._expand_help(action) if action.help else ""
        if action.required and action.option_strings:
            meaning = f"required. {meaning}"
        rows.append(f"| `{_cell(invocation)}` | {_cell(meaning)} |")
    title = {"positional arguments": "arguments", "options": "options"}.get(
        group.title, group.title
    )
    about = f"{group.description[0].upper()}{group.description[1:]}." if group.description else ""
    header = "| argument | meaning |" if positional else "| option | meaning |"
    return ["", f"## {title}", "", *([about, ""] if about else []), header, "| --- | --- |", *rows]


def _printed(args: list[str]) -> str:
    """What ``ganforge ARGS`` prints (commands that only read the code, such as ``presets``)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = main(args)
    if status != 0:
        raise RuntimeError(f"ganforge {' '.join(args)} exited with {status}")
    return out.getvalue().rstrip("\n")


def command_page(command: argparse.ArgumentParser, summary: str) -> str:
    """One command's reference: what it does (its description, else its one-line help), its
    synopsis and a table per group of flags."""
    about = command.description or f"{summary[0].upper()}{summary[1:]}."
    lines = [f"# `{command.prog}`", "", GENERATED, "", about]
    lines += ["", "```text", _synopsis(command), "```"]
    for group in command._action_groups:
        lines += _group_table(command, group)
    if command.prog == "ganforge train":
        lines += [
            "",
            "Each setting's allowed values, default, the presets' values and whether "
            "`--resume` may change it: [`ganforge train` settings](../train-settings.md).",
        ]
    if command.prog == "ganforge presets":
        lines += ["", "## output", "", "```text", _printed(["presets"]), "```"]
    return "\n".join(lines) + "\n"


def commands_index(parser: argparse.ArgumentParser) -> str:
    """The list of commands, the options of ``ganforge`` itself and the exit statuses."""
    lines = [
        "# Commands",
        "",
        GENERATED,
        "",
        "Every command of the `ganforge` command line (`ganforge COMMAND --help` prints the same "
        "flags). Every command checks its whole input before it starts work.",
        "",
        "| command | what it does |",
        "| --- | --- |",
    ]
    for command, summary in _commands(parser):
        lines.append(f"| [`{command.prog}`]({page_name(command)}) | {_cell(summary)} |")
    lines += [
        "",
        "`ganforge --version` prints the version, `ganforge --help` the commands, and "
        "`--help` after a command its flags.",
        "",
        "## exit statuses",
        "",
        "| status | when |",
        "| --- | --- |",
        *(f"| {status} | {when} |" for status, when in EXIT_STATUSES),
    ]
    return "\n".join(lines) + "\n"


def pages() -> dict[Path, str]:
    """Every generated page: its path and its text."""
    parser = build_parser()
    found = {
        HERE / "train-settings.md": settings_reference_markdown(),
        COMMANDS / "index.md": commands_index(parser),
    }
    for command, summary in _commands(parser):
        found[COMMANDS / page_name(command)] = command_page(command, summary)
    return found


def stale_pages() -> list[Path]:
    """Pages under ``commands/`` that no command generates any more."""
    return sorted(set(COMMANDS.glob("*.md")) - set(pages()))


if __name__ == "__main__":
    COMMANDS.mkdir(exist_ok=True)
    for path in stale_pages():
        path.unlink()
        print(f"removed {path}")
    for path, text in pages().items():
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path}")
