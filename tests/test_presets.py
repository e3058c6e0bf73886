"""Every preset shipped in the package is a configuration a search accepts."""

import os
import warnings

import pytest

from moncae.config import preset_names, resolve_config, settings_toml
from moncae.errors import MoncaeWarning
from moncae.search.loop import check_rungs


@pytest.mark.parametrize("name", preset_names())
def test_every_shipped_preset_resolves_to_settings_the_search_accepts(name):
    config = resolve_config(preset=name)
    assert config.preset == name
    if config.train_size:  # a lower rung must be cheaper than the run's own training split
        check_rungs(config, config.train_size)


@pytest.mark.parametrize("name", preset_names())
def test_every_preset_written_as_toml_reads_back_to_the_same_settings(name, tmp_path):
    config = resolve_config(preset=name, dataset="mnist_5k", seed=7, data_dir="/data/here")
    path = tmp_path / "settings.toml"
    path.write_text(settings_toml(config))
    assert resolve_config(config_file=path) == config


def test_the_four_documented_presets_are_shipped():
    assert {"smoke", "quick", "cpu", "paper"} <= set(preset_names())


@pytest.mark.parametrize(("given", "gives_way"), [
    ({"strategy": "random"}, {"latents": "inherited"}),
    ({"strategy": "metaqnn"}, {"latents": "inherited"}),
    ({"space": "paper"}, {"initial": "random", "latents": "inherited"}),
    ({"fidelity": "proxy"}, {"inherit": False}),
])
def test_a_preset_setting_that_the_users_settings_rule_out_gives_way_to_the_default(given, gives_way):
    with pytest.warns(MoncaeWarning, match="preset quick's .* does not apply") as shown:
        config = resolve_config(preset="quick", **given)
    assert sorted(str(w.message).split("'s ")[1].split(" =")[0] for w in shown) == sorted(gives_way)
    with warnings.catch_warnings():
        warnings.simplefilter("error", MoncaeWarning)  # nothing to say when nothing gives way
        assert resolve_config(preset="quick").initial == "spread"  # what the preset itself says
    for name, default in gives_way.items():
        assert getattr(config, name) == default
    assert config.optimizers == resolve_config(preset="quick").optimizers  # the rest still holds


def test_the_same_setting_given_by_the_user_is_refused_with_the_fix(tmp_path):
    from moncae.errors import MoncaeError

    with pytest.raises(MoncaeError, match='needs a strategy that breeds.*use latents = "inherited"'):
        resolve_config(preset="quick", strategy="random", latents="spread")
    toml = tmp_path / "spread.toml"
    toml.write_text('latents = "spread"\n')
    with pytest.raises(MoncaeError, match='`latents` .*needs space = "dense"'), \
            pytest.warns(MoncaeWarning, match="preset quick's initial"):  # the preset's gives way
        resolve_config(preset="quick", config_file=toml, space="paper")


def test_a_dataset_name_is_spelled_as_moncae_spells_it():
    config = resolve_config(dataset="Fashion-MNIST", seed=1)
    assert config.dataset == "fashion_mnist" and config.run_dir.parts[-2:] == ("fashion_mnist", "seed-1")
    path = resolve_config(dataset="data/My-Set.npz", seed=1).dataset
    assert path == os.path.abspath("data/My-Set.npz")  # a path: absolute


def test_several_seeds_say_what_gives_way_once(tmp_path):
    from click.testing import CliRunner

    from moncae.cli.main import main

    result = CliRunner().invoke(main, ["search", "--dataset", "mnist_5k", "--preset", "quick", "--seed", "1,2,3",
                                       "--strategy", "random", "--out", str(tmp_path), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert result.output.count("preset quick's latents = 'spread' does not apply") == 1


def test_an_objective_added_to_the_paper_preset_or_a_dry_run_s_file_gets_its_default_reference(tmp_path):
    """Both pinned ref_point = [4, 12], so any added objective was refused (an audit)."""
    from moncae.method.objective_set import ObjectiveSet

    three = ("rec_loss", "loc", "params")
    assert resolve_config(preset="paper", objectives=list(three)).ref_point == ObjectiveSet.default_ref(three)
    written = tmp_path / "mine.toml"
    written.write_text(settings_toml(resolve_config(preset="paper", dataset="mnist_5k", seed=1)))
    assert "# ref_point = [4.0, 12.0]: the default for these objectives" in written.read_text()
    again = resolve_config(config_file=written, objectives=list(three))
    assert again.ref_point == ObjectiveSet.default_ref(three)
    tight = resolve_config(preset="paper", ref_point=[1.0, 3.0])  # a reference of one's own is written
    assert "\nref_point = [1.0, 3.0]\n" in settings_toml(tight)
