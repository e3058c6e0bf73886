"""The report's dense baselines without training (a stand-in trainer): names, sizes, cache."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from moncae.errors import MoncaeError, RunFolderWarning
from moncae.report.baselines import BASELINE_COLUMNS, cached_pca, dense_baselines, dense_sizes, parse_baselines


def test_baseline_names():
    assert parse_baselines(None) == ("pca",)
    assert parse_baselines("dense_vae, pca") == ("pca", "dense_vae")
    assert parse_baselines("none") == ()
    for bad in ("pca,gan", "", ","):
        with pytest.raises(MoncaeError, match="pca, dense_ae, dense_vae"):
            parse_baselines(bad)


def test_dense_sizes_add_the_runs_small_latent_sizes():
    assert dense_sizes([], 784) == [2, 4, 8, 16, 32, 64]
    assert dense_sizes([16, 100, 392, 6272], 784) == [2, 4, 8, 16, 32, 64, 100, 392]
    assert dense_sizes([50], 32) == [2, 4, 8, 16, 32]


def _scored(x_test) -> SimpleNamespace:
    """A stand-in training's score: every pixel reconstructed as 0.5."""
    return SimpleNamespace(reconstructions=np.full_like(x_test, 0.5), kl=float("nan"), epochs=1, seconds=0.0)


def _data() -> SimpleNamespace:
    """Tiny random train / validation / test images for the stand-in trainer."""
    rng = np.random.default_rng(0)
    return SimpleNamespace(x_train=rng.random((8, 4, 4, 1)), x_val=rng.random((4, 4, 4, 1)),
                           x_test=rng.random((5, 4, 4, 1)))


def test_dense_baselines_are_scored_like_pca_and_cached(tmp_path):
    data = _data()
    calls = []

    def fake_train(kind, k, x_train, x_val, x_test, **kwargs):
        calls.append((kind, k, kwargs["vae_loss"]))
        return SimpleNamespace(reconstructions=np.full_like(x_test, 0.5), kl=0.1 if kind == "dense_vae"
                               else float("nan"), epochs=3, seconds=0.01)

    kwargs = dict(fingerprint="abc", loss="bce", vae_loss="reformulated", vae_eps=0.01,
                  cache=tmp_path / ".baselines" / "d.csv", train=fake_train)
    first = dense_baselines(("pca", "dense_ae", "dense_vae"), [2, 4], data, **kwargs)
    assert list(first.columns) == BASELINE_COLUMNS and len(first) == 4
    assert first["rec_loss"].tolist() == pytest.approx([math.log(2)] * 4)  # BCE of 0.5
    assert first["loc"].tolist() == pytest.approx([math.log10(2), math.log10(4)] * 2)
    assert calls == [("dense_ae", 2, "reformulated"), ("dense_ae", 4, "reformulated"),
                     ("dense_vae", 2, "reformulated"), ("dense_vae", 4, "reformulated")]
    again = dense_baselines(("dense_ae", "dense_vae"), [2, 4], data, **kwargs)
    assert len(calls) == 4  # all from the cache
    assert again.equals(first)
    dense_baselines(("dense_vae",), [2], data, **{**kwargs, "fingerprint": "other"})
    assert len(calls) == 5  # other data: trained again


def test_a_torn_or_unreadable_cache_row_is_trained_again_and_the_file_stays_readable(tmp_path):
    """A report killed mid-append leaves a torn last row: it was read as a value (a cut number)
    or glued to the next row, and every later report failed."""
    data = _data()
    calls = []

    def fake_train(kind, k, x_train, x_val, x_test, **kwargs):
        calls.append(k)
        return SimpleNamespace(reconstructions=np.full_like(x_test, 0.5), kl=float("nan"), epochs=3,
                               seconds=1.2345)

    cache = tmp_path / "d.csv"
    kwargs = dict(fingerprint="abc", loss="bce", vae_loss="elbo", vae_eps=0.01, cache=cache, train=fake_train)
    first = dense_baselines(("dense_ae",), [2, 4], data, **kwargs)
    cache.write_bytes(cache.read_bytes()[:-4])  # the k=4 row cut inside `seconds`
    with pytest.warns(RunFolderWarning, match="torn last line"):
        again = dense_baselines(("dense_ae",), [2, 4, 8], data, **kwargs)
    assert calls == [2, 4, 4, 8] and again.iloc[:2].equals(first)
    text = cache.read_text().replace("1.2345", "x", 1)  # an edited value: the k=2 row no longer reads
    cache.write_text(text)
    third = dense_baselines(("dense_ae",), [2, 4, 8], data, **kwargs)
    assert calls == [2, 4, 4, 8, 2] and third.equals(again)
    assert dense_baselines(("dense_ae",), [2, 4, 8], data, **kwargs).equals(again) and len(calls) == 5


def test_a_cache_damaged_in_the_middle_is_one_error_saying_it_can_be_deleted(tmp_path):
    cache = tmp_path / "d.csv"
    cache.write_text("key,kind\na,b,c\nd,e\n")
    with pytest.raises(MoncaeError, match="damaged in the middle.*delete it and they are computed again"):
        dense_baselines(("dense_ae",), [2], SimpleNamespace(), fingerprint="x", loss="bce", vae_loss="elbo",
                        vae_eps=0.1, cache=cache)


def test_a_results_folder_that_cannot_be_written_trains_the_dense_baselines_without_a_cache(tmp_path, monkeypatch):
    """`--baselines dense_ae` on a read-only results tree failed after the training with a traceback-
    less exit 1 and a partial report (a helper's audit); it now trains without caching, and says so."""
    import os

    from moncae.report import ReportWarning
    from moncae.report.build import _baseline_cache

    assert _baseline_cache(tmp_path, "d") == tmp_path / ".baselines" / "d.csv"
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: False if str(path).startswith(str(tmp_path))
                        else real_access(path, mode, **kw))  # as for a user without write permission
    with pytest.warns(ReportWarning, match="cannot be written; the dense baselines are trained but not cached"):
        assert _baseline_cache(tmp_path, "d") is None
    data = _data()
    out = dense_baselines(("dense_ae",), [2], data, fingerprint="abc", loss="bce", vae_loss="elbo", vae_eps=0.01,
                          cache=None, train=lambda kind, k, x_train, x_val, x_test, **kw: _scored(x_test))
    assert len(out) == 1 and not any(tmp_path.iterdir())


def test_two_reports_at_once_train_each_dense_baseline_once(tmp_path):
    """Both trained every baseline and the cache held each row twice (a helper's audit): the second
    now waits for the first's lock on the cache, then reads its rows."""
    import threading

    from moncae.store.lock import exclusive

    data = _data()
    calls = []

    def fake_train(kind, k, x_train, x_val, x_test, **kwargs):
        calls.append(k)
        return _scored(x_test)

    cache = tmp_path / ".baselines" / "d.csv"
    kwargs = dict(fingerprint="abc", loss="bce", vae_loss="elbo", vae_eps=0.01, cache=cache, train=fake_train)
    cache.parent.mkdir()
    with exclusive(cache.with_name("d.csv.lock")):  # the first report, training
        second = threading.Thread(target=dense_baselines, args=(("dense_ae",), [2, 4], data), kwargs=kwargs)
        second.start()
        second.join(0.3)
        assert second.is_alive() and calls == []  # it waits
        from moncae.report.baselines import _CACHE_COLUMNS, _key
        from moncae.store.journal import append_rows
        for k in (2, 4):
            append_rows(cache, _CACHE_COLUMNS, [{"key": _key("dense_ae", k, {"data": "abc", "loss": "bce"}),
                                                 "kind": "dense_ae", "k": k, "loc": 0.3, "rec_loss": 0.69,
                                                 "kl": "", "epochs": 1, "seconds": 0.0}])
    second.join(10)
    assert calls == []  # the second found both rows
    assert len(cache.read_text().splitlines()) == 3


def test_pca_losses_are_cached_by_data_and_loss_and_only_the_missing_ks_computed(tmp_path):
    import pandas as pd

    calls = []

    def compute(ks):  # a stand-in for pca_baseline: a loss made from k
        calls.append(list(ks))
        return pd.DataFrame({"k": ks, "loc": [math.log10(k) for k in ks], "rec_loss": [1 / k for k in ks]})

    cache = tmp_path / ".baselines" / "d.csv"
    first = cached_pca([4, 2, 8], fingerprint="f", loss="bce", cache=cache, compute=compute)
    assert calls == [[2, 4, 8]] and list(first["k"]) == [2, 4, 8]
    again = cached_pca([2, 4, 8], fingerprint="f", loss="bce", cache=cache, compute=compute)
    assert calls == [[2, 4, 8]] and again.equals(first)  # read back, nothing computed
    more = cached_pca([2, 16], fingerprint="f", loss="bce", cache=cache, compute=compute)
    assert calls[-1] == [16] and list(more["rec_loss"]) == [0.5, 1 / 16]
    cached_pca([2], fingerprint="other data", loss="bce", cache=cache, compute=compute)
    cached_pca([2], fingerprint="f", loss="mse", cache=cache, compute=compute)
    assert calls[-2:] == [[2], [2]]
    assert cached_pca([2], fingerprint="f", loss="bce", cache=None, compute=compute).equals(first[:1])
    assert calls[-1] == [2]
