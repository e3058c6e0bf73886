"""`finetune_run`: the paper's second stage on a finished search run (Section 3, Table 1).

Each unique genome of the final population continues training from its searched weights with
its own optimizer and learning rate (early stopping on the run's validation split; the best
weights are kept, the searched ones included), and is then measured on the test split:
reconstruction loss (the search's loss), LOC, and how well a softmax classifier trained on its
frozen latent codes separates the classes (`moncae.model.latent`).

Results go to `RUN_DIR/finetune.csv` (one row per unique genome, appended as each model
finishes, so a rerun skips what is done) and the models to `RUN_DIR/finetuned/`, each with its
test images' losses beside it (`KEY.test_losses.npy`: the report compares them image by image with
PCA's). The models are
fine-tuned by an executor (`moncae.executors`): with `workers = "auto"` two at a time in worker
processes on a CPU-only machine with >= 2 cores, each with the cores shared out as TensorFlow
threads (as the search trains), else one at a time in one worker process (an explicit
`workers = 1`: in this process); this process writes every file.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from moncae.config import WORKERS_AUTO, SearchConfig
from moncae.data import DATASET_NAMES, cached_dataset, dataset_status
from moncae.data.locate import user_data_dir
from moncae.errors import DataError, MoncaeError, RunFolderError, one_line
from moncae.executors import Executor, execution_notices, execution_record, make_executor, with_later_execution
from moncae.finetune.records import (
    FINETUNE_COLUMNS,
    FINETUNE_CSV,
    FINETUNE_JSON,
    FINETUNE_VAE_COLUMNS,
    FINETUNED_DIR,
    FinalModel,
    FinetuneProgress,
    FinetuneRecord,
    FinetuneResult,
    FinetuneSettings,
    read_finetune_json,
)
from moncae.finetune.tasks import FinetuneTask, lost_finetune, run_finetune_task
from moncae.method.architecture import forward_flops
from moncae.method.genome import Genome
from moncae.store import (
    MODEL_INDEX_COLUMNS,
    RUN_FOLDER_HINT,
    RunFolder,
    RunLock,
    append_rows,
    atomic_open,
    image_losses_filename,
    lock_holder,
    model_filename,
    read_csv_rows,
    read_rows,
    rewrite_rows,
    write_csv,
    write_json,
)

__all__ = ["check_finished", "check_run", "final_models", "finetune_executor", "finetune_run",
           "read_run_config"]


# --------------------------------------------------------------------------- reading the run


def read_run_config(run: RunFolder | str | os.PathLike) -> SearchConfig:
    """The settings a run was made with (its config.json), e.g. to go on with it from Python:
    `run_search(dataclasses.replace(read_run_config(RUN), generations=10), resume=True)`; `out` is
    where RUN is now, where it was moved or copied as OUT/DATASET/seed-N. A
    `RunFolderError` naming the fix where the folder is not a run's or its config.json is damaged."""
    run = run if isinstance(run, RunFolder) else RunFolder(run)
    if not run.path.is_dir():
        what = "not a folder" if run.path.exists() else "no such folder"
        raise RunFolderError(f"{run.path} is not a moncae run folder ({what}); {RUN_FOLDER_HINT}")
    payload = run.read_config()  # its errors name the folder and what is wrong with it
    try:
        config = SearchConfig.from_dict(payload["run"])
    except MoncaeError as err:
        raise RunFolderError(f"{run.config}: not a valid run configuration ({err})") from None
    # `out` where the folder is now (copied or moved: config.json keeps the old --out, and a resume
    # there would go on with the original run), where a search finds it
    out = run.out_root(config.dataset, config.seed)
    return config if out is None or out == Path(config.out) else dataclasses.replace(config, out=str(out))


def check_finished(run: RunFolder):
    """The checkpoint of a search that finished and wrote its final models (else an error)."""
    state = run.load_checkpoint()
    if state is None or not state.finished or not run.model_index.exists():
        where = "no checkpoint" if state is None else (
            f"last checkpoint after generation {state.generation + 1}" if not state.finished
            else "no models/index.csv")
        holder = lock_holder(run.path)
        if holder and "moncae search" in holder:
            raise RunFolderError(f"{run.path} has no final population yet ({where}): its search is still "
                                 f"running ({holder}); wait for it to finish")
        raise RunFolderError(
            f"{run.path} has no final population ({where}); finish the search first with "
            f"{run.resume_command()}"
        )
    return state


def check_run(run_dir) -> tuple[RunFolder, SearchConfig]:
    """A finished search's run folder and its settings; else a `RunFolderError` naming the fix
    (not a run folder, unreadable settings, the search not finished). Reads no data."""
    run = RunFolder(run_dir)
    config = read_run_config(run)
    check_finished(run)
    return run, config


def final_models(run: RunFolder, input_shape) -> list[FinalModel]:
    """The final population's unique genomes (first individual first), from a finished run."""
    state = check_finished(run)
    try:
        return _final_models(run, state, input_shape)
    except (KeyError, TypeError, ValueError) as err:
        raise RunFolderError(f"{run.model_index} or {run.checkpoint} is damaged ({one_line(err)}); "
                             f"finish the search again with {run.resume_command()}") from None


def _final_models(run: RunFolder, state, input_shape) -> list[FinalModel]:
    index = read_csv_rows(run.model_index)
    if len(index) != len(state.population):
        raise RunFolderError(f"{run.model_index} lists {len(index)} models but the final "
                             f"population has {len(state.population)}; the run folder is "
                             "inconsistent")
    unique: dict[str, FinalModel] = {}
    for row, config in zip(index, state.population, strict=True):
        genome = Genome.from_config(config)
        key = genome.key_for(input_shape)
        if key != row["genome_key"]:
            raise RunFolderError(f"{run.model_index} does not match the checkpoint's final "
                                 f"population (individual {row['individual']}); the run folder "
                                 "is inconsistent")
        i = int(row["individual"])
        if key in unique:
            first = unique[key]
            unique[key] = dataclasses.replace(first, individuals=(*first.individuals, i))
        else:
            # the file the search names for this key (never the index's text: a path from elsewhere)
            model = run.model_path(key) if row["file"] else None
            unique[key] = FinalModel(i, genome, key, model, (i,))
    return list(unique.values())


def _continued(run: RunFolder, settings: FinetuneSettings, has_rows: bool) -> dict | None:
    """finetune.json of the rows a rerun continues (None: nothing to continue); a rerun must use
    their settings (or start over), else a `RunFolderError`. Reads only."""
    if not has_rows:
        return None
    payload = read_finetune_json(run.path)
    if payload is None:  # written before the first row: deleted since
        raise RunFolderError(
            f"{run.path / FINETUNE_CSV} has rows but {FINETUNE_JSON} is gone, so the settings they were made "
            f"with are unknown; put it back, or delete {FINETUNE_CSV} and {FINETUNED_DIR}/ to start over")
    previous = payload.get("settings")
    current = asdict(settings)
    if not isinstance(previous, dict) or not all(
            isinstance(previous.get(k), int) or (k == "patience" and previous.get(k, 0) is None) for k in current):
        raise RunFolderError(
            f"{run.path / FINETUNE_JSON} is damaged (it does not give the settings the rows of {FINETUNE_CSV} "
            f"were made with); put it back from a copy of the run, or delete {FINETUNE_CSV} and "
            f"{FINETUNED_DIR}/ to start over")
    differ = sorted(k for k in current if previous[k] != current[k])
    if differ:
        def said(value):  # as the flag takes it: no early stopping is `--patience off`
            return "off" if value is None else value

        details = ", ".join(f"{k}: {said(previous[k])} -> {said(current[k])}" for k in differ)
        flags = " ".join(f"--{k.replace('_', '-')} {said(previous[k])}" for k in differ)
        raise RunFolderError(
            f"{run.path / FINETUNE_CSV} was made with other settings ({details}); rerun with "
            f"{flags}, or delete {FINETUNE_CSV} and {FINETUNED_DIR}/ to start over"
        )
    return payload


def _check_settings(run: RunFolder, settings: FinetuneSettings, execution: dict,
                    has_rows: bool) -> list[str]:
    """A rerun must use the settings of the rows it continues (or start over); it is told (the
    lines returned) when it trains with another thread count or CPU than those rows were."""
    payload = _continued(run, settings, has_rows)
    if payload is not None:
        notices = execution_notices(run.path / FINETUNE_CSV, payload.get("execution"), execution,
                                    "this fine-tune")
        if (recorded := with_later_execution(payload, execution, notices)) is not None:
            write_json(run.path / FINETUNE_JSON, recorded)  # every way its rows were made
        return notices
    write_json(run.path / FINETUNE_JSON, {"settings": asdict(settings), "execution": execution,
                                          "started": datetime.now(timezone.utc).isoformat(timespec="seconds")})
    return []


def check_finetune(run_dir, *, epochs: int | None = None, classifier_epochs: int = 20, batch_size: int = 256,
                   patience: int | None = 3, data_dir: str | None = None) -> None:
    """What `finetune_run` checks before it trains, reading only: a finished search's run folder
    (`check_run`), rows already fine-tuned made with these settings, and that its data is there (a
    data folder, a dataset file; a named dataset that may be downloaded is not fetched). `moncae
    finetune A B ...` checks every folder so before fine-tuning any."""
    run, config = check_run(run_dir)
    settings = FinetuneSettings(config.finetune_epochs if epochs is None else epochs, classifier_epochs,
                                batch_size, patience)
    _continued(run, settings, bool(_read_done(run.path / FINETUNE_CSV, repair=False)))  # no lock held yet
    folder = data_dir if data_dir is not None else config.data_dir
    user_data_dir(folder)  # a data folder that is not there: a DataError naming it
    if config.dataset not in DATASET_NAMES:  # a user's file: nothing to download
        status = dataset_status(config.dataset, data_dir=folder)
        if not status.available:
            raise DataError(f"{run.path}: {status.reason}")


# --------------------------------------------------------------------------- the run


def finetune_executor(workers=WORKERS_AUTO) -> Executor:
    """The executor `finetune_run` uses by default (`workers`: an integer or "auto"); pass one to
    several `finetune_run` calls to start its worker processes once."""
    return make_executor("local", workers=workers, on_lost=lost_finetune)


def finetune_run(run_dir, *, epochs: int | None = None, classifier_epochs: int = 20, batch_size: int = 256,
                 patience: int | None = 3, data_dir: str | None = None,
                 progress: FinetuneProgress | None = None, workers=WORKERS_AUTO,
                 executor: Executor | None = None) -> FinetuneResult:
    """Fine-tune every unique genome of a finished run's final population and measure it.

    Args:
        run_dir: a run folder written by `moncae search` (`OUT/DATASET/seed-N/`) whose search
            finished.
        epochs: maximum fine-tuning epochs per model (early stopping on the validation split);
            0 measures the searched models as they are; None: the run's `finetune_epochs`
            setting (20, the default; a preset may set fewer, e.g. `cpu`).
        classifier_epochs: training epochs of the latent softmax classifier.
        batch_size: fine-tuning batch size (and images per encoder call).
        patience: early-stopping patience, in epochs without a better validation loss; None: no
            early stopping (every epoch, and the last epoch's weights, as the paper).
        data_dir: where to find the dataset if not where the search found it.
        progress: receives `started` / `model_done` calls (for a progress bar).
        workers: models fine-tuned at once, each in its own process ("auto": 2 on a CPU-only
            machine with >= 2 cores, else 1 in one worker process; an explicit 1: in this
            process). TensorFlow's CPU results depend
            on its thread count (the cores shared out among the workers, or all of them in this
            process), so they may differ in the last digits between settings; each is
            reproducible.
        executor: runs the fine-tunes instead of one made from `workers` (left open).

    Returns:
        A `FinetuneResult`: one record per unique final genome, in individual order (those
        done by an earlier call are read from `finetune.csv`), and how many were trained now.

    Raises:
        RunFolderError: not a run folder, the search has not finished, or `finetune.csv` was
            made with other settings.
        DataError: the run's dataset cannot be loaded here.
    """
    progress = progress or FinetuneProgress()
    missing = [name for name in ("started", "model_done", "message")
               if not callable(getattr(progress, name, None))]
    if missing:
        raise MoncaeError(f"`progress` must be a moncae.FinetuneProgress (subclass it and override the hooks "
                          f"you need); it lacks {', '.join(missing)}. Received: progress={progress!r}"[:300])
    run, config = check_run(run_dir)  # before loading any data: a quick answer for a wrong folder
    settings = FinetuneSettings(config.finetune_epochs if epochs is None else epochs, classifier_epochs,
                                batch_size, patience)
    if data_dir is not None:
        config = dataclasses.replace(config, data_dir=data_dir)
    data = cached_dataset(config.data_spec())
    run.check_data(data)
    own = executor is None
    executor = finetune_executor(workers) if own else executor
    try:
        with RunLock(run.path, "moncae finetune"):
            return _finetune_locked(run, config, settings, data, progress, executor)
    finally:
        if own:
            executor.close()


def _finetune_locked(run: RunFolder, config: SearchConfig, settings: FinetuneSettings, data,
                     progress: FinetuneProgress, executor: Executor) -> FinetuneResult:
    models = final_models(run, data.input_shape)
    columns = FINETUNE_COLUMNS + (FINETUNE_VAE_COLUMNS if config.model == "vae" else [])
    csv_path = run.path / FINETUNE_CSV
    done = _read_done(csv_path)
    out_dir = run.path / FINETUNED_DIR
    retry = [k for k, r in done.items() if r.transient]
    # fine-tuned ok, but the model file is gone (deleted by hand): fine-tuned again, as it ran
    lost = [k for k, r in done.items() if r.status == "ok" and not (out_dir / model_filename(k)).is_file()]
    again = {*retry, *lost}  # trained again, from the searched model
    gone = [m for m in models if m.model_file is not None and not m.model_file.is_file()
            and (m.genome_key not in done or m.genome_key in again)]
    if gone:  # a damaged run folder, not a passing failure: said before anything is written
        raise RunFolderError(
            f"{gone[0].model_file} (the search's model of individual {gone[0].individual}"
            f"{f', and {len(gone) - 1} more' if len(gone) > 1 else ''}) is missing; restore the run's "
            f"{gone[0].model_file.parent.name}/ folder from a copy of the run")
    for notice in _check_settings(run, settings, execution_record(executor), has_rows=bool(done)):
        progress.message(notice)
    if again:  # failed for a passing reason (memory, disk), or lost: drop the rows, train again
        done = {k: r for k, r in done.items() if k not in again}
        rewrite_rows(csv_path, columns, [r.row() for r in done.values()])
    if retry:
        progress.message(f"{len(retry)} model(s) that failed for a passing reason are tried again")
    if lost:
        progress.message(f"{len(lost)} fine-tuned model(s) whose file in {FINETUNED_DIR}/ is gone are "
                         "fine-tuned again")
    todo = [m for m in models if m.genome_key not in done]
    progress.started(len(models), len(todo), len(models) - len(todo))

    tasks = [FinetuneTask(m, config, settings, data.input_shape,
                          float(forward_flops(m.genome, data.input_shape, config.model)), data.fingerprint)
             for m in todo]
    for model, out in zip(todo, executor.map_ordered(run_finetune_task, tasks), strict=True):
        record = out.record
        if out.model_bytes is not None:
            try:
                with atomic_open(out_dir / model_filename(model.genome_key), "wb") as fh:
                    fh.write(out.model_bytes)
                if out.test_losses is not None:  # the report's paired comparison with PCA
                    with atomic_open(out_dir / image_losses_filename(model.genome_key), "wb") as fh:
                        np.save(fh, np.asarray(out.test_losses, dtype=np.float64), allow_pickle=False)
            except OSError as err:  # e.g. a full disk: worth trying again later
                record = dataclasses.replace(record, status="failed", error=one_line(err), failure="io")
        append_rows(csv_path, columns, [record.row()])  # after its model file
        done[model.genome_key] = record
        progress.model_done(record)

    records = [done[m.genome_key] for m in models]
    if retry or lost:  # their rows went to the end: back in individual order, as an uninterrupted run has them
        rewrite_rows(csv_path, columns, [r.row() for r in records])
    _write_index(out_dir, models, records)
    return FinetuneResult(run.path, records, trained=len(todo), skipped=len(models) - len(todo),
                          settings=settings)


def _read_done(path: Path, *, repair: bool = True) -> dict[str, FinetuneRecord]:
    """Models already fine-tuned, by genome key (a rerun skips them); a torn last row is left out,
    and with `repair` (the run's lock held) cut from the file."""
    hint = f"delete it (and {FINETUNED_DIR}/) to fine-tune again"
    try:
        rows = read_rows(path, FINETUNE_COLUMNS, repair=repair)
    except RunFolderError as err:
        raise RunFolderError(f"{err}; {hint}") from None
    done: dict[str, FinetuneRecord] = {}
    for row in rows:
        try:
            record = FinetuneRecord.from_row(row)
        except (KeyError, TypeError, ValueError) as err:
            raise RunFolderError(f"{path} is corrupt ({one_line(err)}); {hint}") from None
        done.setdefault(record.genome_key, record)
    return done


def _write_index(out_dir: Path, models: list[FinalModel], records: list[FinetuneRecord]) -> None:
    """`finetuned/index.csv`: every final individual -> its fine-tuned model file."""
    rows = []
    for model, record in zip(models, records, strict=True):
        name = model_filename(model.genome_key)
        exists = record.ok and (out_dir / name).exists()
        for i in model.individuals:
            rows.append({"individual": i, "genome_key": model.genome_key,
                         "file": name if exists else "", "status": record.status})
    rows.sort(key=lambda r: r["individual"])
    write_csv(out_dir / "index.csv", MODEL_INDEX_COLUMNS, rows)
