"""Every preset shipped in the package is a configuration a search accepts."""

import pytest

from moncae.config import preset_names, resolve_config
from moncae.search.loop import check_rungs


@pytest.mark.parametrize("name", preset_names())
def test_every_shipped_preset_resolves_to_settings_the_search_accepts(name):
    config = resolve_config(preset=name)
    assert config.preset == name
    if config.train_size:  # a lower rung must be cheaper than the run's own training split
        check_rungs(config, config.train_size)


def test_the_four_documented_presets_are_shipped():
    assert {"smoke", "quick", "cpu", "paper"} <= set(preset_names())
