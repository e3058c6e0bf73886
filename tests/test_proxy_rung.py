"""`fidelity = "proxy"`: the lower rungs train only the decoder (random frozen encoder), on the
surrogate evaluator (no Keras); the Keras side is in test_proxy.py (slow)."""

from __future__ import annotations

import pandas as pd
import pytest

from moncae.errors import MoncaeError
from moncae.evaluation.records import EvalResult
from moncae.evaluation.surrogate import surrogate_task
from moncae.method.fidelity import Rung, rung_schedule
from moncae.search.loop import run_search

PROXY = {"fidelity": "proxy", "rungs": [[1, 87]], "promote": 0.34}  # all 87 training images of the tiny set


def with_model(task):
    return EvalResult(surrogate_task(task).record, f"{task.key}@{task.rung}".encode())


def test_proxy_rungs_are_decoder_only_and_the_top_rung_is_not():
    assert rung_schedule([[2, 500]], 5, decoder_only=True) == (Rung(2, 500, True), Rung(5, None, False))
    assert rung_schedule([[2, 500]], 5) == (Rung(2, 500), Rung(5, None))  # "rungs" as before


def test_a_proxy_search_trains_decoder_only_first_then_end_to_end(stub_config, tmp_path):
    seen = []

    def spy(task):
        seen.append((task.rung, task.train.decoder_only, task.train.train_images, task.init_model is not None))
        return with_model(task)

    result = run_search(stub_config(tmp_path / "a", **PROXY), task_fn=spy)
    assert {(r, d) for r, d, _, _ in seen} == {(0, True), (1, False)}
    assert all(init for r, _, _, init in seen if r == 1)  # promoted: continue from the proxy's model
    ev = pd.read_csv(result.run_dir / "evaluations.csv")
    assert (ev["rung"] == 0).sum() > (ev[ev["generation"] < 3]["rung"] == 1).sum()  # only some promoted
    again = run_search(stub_config(tmp_path / "b", **PROXY), task_fn=with_model)
    for name in ("evaluations.csv", "population.csv", "generations.csv"):
        a, b = (pd.read_csv(d / name).drop(columns=["fit_seconds", "seconds"], errors="ignore")
                for d in (result.run_dir, again.run_dir))
        pd.testing.assert_frame_equal(a, b, check_exact=True)


def test_proxy_settings_are_checked(stub_config):
    with pytest.raises(MoncaeError, match="needs at least one lower rung with fidelity = \"proxy\""):
        stub_config(fidelity="proxy")
    with pytest.raises(MoncaeError, match="inherit.*proxy"):
        stub_config(**PROXY, inherit=True)
    with pytest.raises(MoncaeError, match="use fewer in `rungs`"):
        run_search(stub_config(**{**PROXY, "rungs": [[1, 88]]}), task_fn=with_model)


@pytest.mark.parametrize("epochs, rungs, warned", [
    (1, [[2, 256]], True),    # the shipped example with smoke's 1 epoch: the proxy costs more
    (2, [[2, 256]], True),    # as many image-epochs as the full budget
    (3, [[2, 256]], False),   # experiments/proxy.toml
    (1, [[1, 128]], False),
])
def test_a_proxy_rung_no_cheaper_than_the_full_budget_is_said(epochs, rungs, warned):
    import warnings

    from moncae.config import resolve_config
    from moncae.errors import MoncaeWarning
    from moncae.search.loop import check_rungs

    config = resolve_config(preset="smoke", fidelity="proxy", rungs=rungs, epochs=epochs)
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        check_rungs(config, 256)
    shown = [str(w.message) for w in said if issubclass(w.category, MoncaeWarning)]
    assert bool(shown) == warned, shown
    if warned:
        assert f"as many image-epochs as the full budget ({epochs} on 256) or more" in shown[0]
