"""`moncae datasets`: which datasets are usable here, from where, and why not."""

from __future__ import annotations

import click

from moncae.cli.options import data_dir_option


def _shape(shape: tuple | None) -> str:
    return "x".join(str(d) for d in shape) if shape else "-"


@click.command()
@data_dir_option
def datasets(data_dir: str | None) -> None:
    """List each dataset, whether it is available here and from where (or why not)."""
    from moncae.data import DATASET_NAMES, dataset_status

    for name in DATASET_NAMES:
        st = dataset_status(name, data_dir=data_dir)
        if st.available:
            click.echo(
                f"{name:<14} available    train {_shape(st.train_shape):<14} "
                f"test {_shape(st.test_shape):<14} from {st.source}"
            )
        else:
            click.echo(f"{name:<14} unavailable  {st.reason}")
