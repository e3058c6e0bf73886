"""In the local executor's workers, `import_tensorflow_quietly` holds off the libraries Keras would
import only because they are installed (pandas, scikit-learn, SciPy, matplotlib): ~1.5 s of every
worker's start-up. Other processes (a notebook's Keras) are left as they were."""

from __future__ import annotations

import subprocess
import sys

import pytest

from moncae.tfquiet import KERAS_EXTRAS, holding_off


def test_a_held_off_module_cannot_be_imported_inside_the_block_and_can_after(tmp_path, monkeypatch):
    (tmp_path / "moncae_held_probe.py").write_text("VALUE = 7\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with holding_off(("moncae_held_probe", "json")):  # json is imported already: left alone
        with pytest.raises(ImportError):
            import moncae_held_probe  # noqa: F401
        import json

        assert json.dumps(1) == "1"
    import moncae_held_probe

    assert moncae_held_probe.VALUE == 7
    del sys.modules["moncae_held_probe"]


@pytest.mark.slow  # a worker process imports TensorFlow (~3 s)
def test_a_local_worker_loads_keras_without_the_extras_which_still_import_later():
    from process_tasks import keras_extras_loaded

    from moncae.executors.processes import ProcessExecutor

    with ProcessExecutor(1, threads=1) as executor:
        assert list(executor.map_ordered(keras_extras_loaded, [0])) == [[]]


@pytest.mark.slow  # a fresh interpreter imports TensorFlow (~4 s)
def test_any_other_process_loads_keras_as_it_would_anyway():
    script = ("import sys\nfrom moncae.model import training\n"
              f"print(sorted(m for m in {KERAS_EXTRAS!r} if m in sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(sorted(KERAS_EXTRAS))  # all installed with moncae's dependencies
