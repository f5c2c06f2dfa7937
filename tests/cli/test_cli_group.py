import subprocess
import sys

from click.testing import CliRunner

from medfuse import __version__
from medfuse.cli import cli


def test_version_and_help_list_commands():
    runner = CliRunner()
    res = runner.invoke(cli, ["--version"])
    assert res.exit_code == 0
    assert __version__ in res.output
    res = runner.invoke(cli, ["--help"])
    assert res.exit_code == 0
    assert "Usage" in res.output


def test_unknown_command_is_usage_error():
    res = CliRunner().invoke(cli, ["no-such-command"])
    assert res.exit_code == 2


def test_module_entry_point_runs():
    out = subprocess.run([sys.executable, "-m", "medfuse", "--version"], capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stderr
    assert __version__ in out.stdout
