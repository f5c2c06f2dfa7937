"""The study options' click table (medfuse.fusion.flags): one table for fuse, batch and
manifests."""

from __future__ import annotations

import click
import click.testing

from medfuse.fusion.flags import add_study_options, study_options


def test_the_table_defaults_are_the_library_defaults() -> None:
    from medfuse.fusion.pipeline import FuseOptions
    from medfuse.fusion.run import options_from_flags

    flags = {o.name: o.default for o in study_options()}
    assert options_from_flags(**flags) == FuseOptions()


def test_fuse_batch_and_manifests_take_the_same_options() -> None:
    from medfuse.batch.options import convert_option, fuse_options
    from medfuse.cli.batch import command as batch
    from medfuse.cli.fuse import command as fuse

    names = [o.name for o in study_options()]
    assert "method" in names and "formats" in names and "out_dir" not in names
    fuse_names = [p.name for p in fuse.params]
    start = fuse_names.index(names[0])
    assert fuse_names[start:start + len(names)] == names  # in one block, in the table's order
    assert [p.name for p in batch.params if p.name in names] == names
    assert [p.name for p in fuse_options()] == names
    # a manifest value goes through the same click type as the command line's
    assert convert_option("register", "rigid") == ("register", "rigid")
    assert convert_option("batch-size", "4") == ("batch_size", 4)


def test_add_study_options_decorates_a_command() -> None:
    @click.command()
    @add_study_options
    def cmd(**kwargs):
        click.echo(sorted(k for k, v in kwargs.items() if v is not None))

    res = click.testing.CliRunner().invoke(cmd, ["--register", "none", "--batch-size", "2"])
    assert res.exit_code == 0, res.output
    assert "'batch_size'" in res.output and "'register'" in res.output
    res = click.testing.CliRunner().invoke(cmd, ["--register", "sideways"])
    assert res.exit_code == 2 and "sideways" in res.output
