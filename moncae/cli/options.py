"""Options shared by several commands."""

from __future__ import annotations

import sys

import click

data_dir_option = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=str),
    default=None,
    envvar="MONCAE_DATA_DIR",
    show_envvar=True,
    help="Folder with dataset files in their original layout (IDX .gz, mnist.npz, cifar-10-batches-py/).",
)


def unsaved_text(count: int, first: str, what: str, again: str, fix: str) -> str:
    """`count` results that failed for a passing reason: the first reason, a likely `fix` and the
    command that trains them again."""
    return (f"{count} {what} failed for a passing reason (first: {first}); fix it ({fix}) and run the same "
            f"command {again}")


def exit_if_unsaved(unsaved, what: str, again: str, fix: str) -> None:
    """Exit 1 with one line when some results failed for a passing reason (disk, memory, a dying
    worker), naming the first reason, a likely `fix` and the command that trains them again."""
    if unsaved:
        click.echo(f"Error: {unsaved_text(len(unsaved), unsaved[0].error, what, again, fix)}", err=True)
        sys.exit(1)
