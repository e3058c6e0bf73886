"""Options shared by several commands."""

from __future__ import annotations

import click

data_dir_option = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=str),
    default=None,
    envvar="MONCAE_DATA_DIR",
    show_envvar=True,
    help="Folder with dataset files in their original layout (IDX .gz, mnist.npz, cifar-10-batches-py/).",
)
