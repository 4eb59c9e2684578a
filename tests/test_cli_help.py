"""Every command of the `meta` CLI has help text with an example, and a section with an example in
docs/USER_GUIDE.md; a command added without them fails here."""

import re

import click
import pytest
from click.testing import CliRunner

from meta.cli.main import main

from .conftest import ROOT

GUIDE = (ROOT / "docs" / "USER_GUIDE.md").read_text()
EXAMPLES = [line.strip() for block in re.findall(r"```sh\n(.*?)```", GUIDE, re.S) for line in block.splitlines()]
CONTEXT = click.Context(main)
COMMANDS = {name: main.get_command(CONTEXT, name) for name in main.list_commands(CONTEXT)}


def test_every_command_is_registered():
    assert {"pool", "validate", "run", "add", "diff", "bias", "batch", "metareg", "init", "import",
            "export"} <= set(COMMANDS)
    assert all(command is not None for command in COMMANDS.values())


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_command_has_help_with_an_example(name):
    command = COMMANDS[name]
    assert command.help and command.help.strip(), f"meta {name} has no help text"
    assert re.search(rf"Examples?:\s+meta {name}\b", command.help), \
        f"meta {name}'s help has no 'Example: meta {name} ...' line"
    result = CliRunner().invoke(command, ["--help"])
    assert result.exit_code == 0 and "Usage:" in result.output


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_command_is_in_the_user_guide_with_an_example(name):
    assert f"### `meta {name}`" in GUIDE, f"docs/USER_GUIDE.md has no section '### `meta {name}`'"
    assert any(line == f"meta {name}" or line.startswith(f"meta {name} ") for line in EXAMPLES), \
        f"docs/USER_GUIDE.md has no example of meta {name} in a ```sh block"


def test_the_guide_links_the_methods_and_the_vocabulary():
    for target in ("METHODS.md", "DIVERGENCES.md", "../extraction/dictionary.csv", "../extraction/README.md"):
        assert f"]({target})" in GUIDE


def test_top_level_help_lists_every_command_without_cutting_its_line():
    output = CliRunner().invoke(main, ["--help"]).output
    for name, command in COMMANDS.items():
        line = next(line for line in output.splitlines() if line.strip().startswith(name + " "))
        assert not line.rstrip().endswith("..."), line
        assert command.get_short_help_str(limit=200) in " ".join(output.split())
