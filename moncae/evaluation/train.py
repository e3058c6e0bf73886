"""Train one genome and measure it: the only place the search touches Keras.

`run_task` is the unit of work an executor runs (in this process or on a Dask worker).
"""

from __future__ import annotations

import dataclasses
import math
import time

from moncae.data import Dataset, cached_dataset
from moncae.errors import one_line
from moncae.evaluation.records import EvalResult, EvalTask, failed_record, failure_kind
from moncae.method.architecture import (
    bottleneck_shape,
    bottleneck_text,
    describe_with_bottleneck,
    forward_flops,
    loc_of_shape,
)
from moncae.model.decode import build_autoencoder
from moncae.model.inherit import inherit_weights, load_parent_model
from moncae.model.proxy import freeze_encoder
from moncae.model.training import (
    end_session,
    fit_autoencoder,
    float32_keras,
    inference_latency_ms,
    make_loss,
    make_optimizer,
    model_to_bytes,
    quiet_tensorflow,
)
from moncae.model.vae import build_vae, compile_vae, fit_vae, vae_kl
from moncae.model.warm import digest, optimizer_start, rewind, warm_models

__all__ = ["evaluate_genome", "run_task"]


def evaluate_genome(task: EvalTask, data: Dataset) -> EvalResult:
    """Build, compile and train one genome; never raises: failures come back as status 'failed'."""
    import keras

    quiet_tensorflow()
    start = time.perf_counter()
    genome = task.genome
    shape = data.input_shape
    bottleneck = bottleneck_shape(genome, shape)
    record = failed_record(
        dataclasses.replace(task, key=genome.key_for(shape)), "",
        architecture=describe_with_bottleneck(genome, shape),
        bottleneck=bottleneck_text(bottleneck),
    )
    model_bytes = None
    try:  # the previous evaluation cleared the Keras session in its `finally`
        keras.utils.set_random_seed(task.seed)
        kind = task.train.model
        vae = build_vae(genome, shape, seed=task.seed) if kind == "vae" else None
        if vae is not None:
            autoencoder, encoder = vae.vae, None
        else:
            autoencoder, encoder = build_autoencoder(genome, shape, seed=task.seed)
        warmable = vae is None and not task.train.decoder_only  # see moncae.model.warm
        warm = warm_models.take(digest(task.init_model)) if warmable and task.init_model else None
        if warm is not None:  # this process trained the lower rung: continue from that model
            rewind(warm.model, warm.optimizer_start, autoencoder)
            autoencoder = warm.model
        elif task.init_model is not None:  # a promoted genome continues from its lower rung
            autoencoder.set_weights(load_parent_model(task.init_model, genome, shape, model=kind)
                                    .get_weights())
        elif any(task.parent_models) and genome.lineage is not None:  # weight inheritance
            parents = [None if m is None else load_parent_model(m, p, shape, model=kind)
                       for m, p in zip(task.parent_models, genome.parents())]
            record.inherited = inherit_weights(autoencoder, genome, parents).weights_inherited
        record.params = int(autoencoder.count_params())
        if vae is not None:
            compile_vae(vae, make_optimizer(genome), task.train.loss, task.train.vae_eps)
        elif warm is None:
            if task.train.decoder_only:  # the proxy rung: the random initial encoder, frozen
                freeze_encoder(encoder)
            autoencoder.compile(optimizer=make_optimizer(genome), loss=make_loss(task.train.loss),
                                jit_compile=False)
        keep_warm = warmable and task.keep_warm and task.keep_model
        start_state = warm.optimizer_start if warm is not None else (
            optimizer_start(autoencoder) if keep_warm else None)
        fit_start = time.perf_counter()
        x_train = data.x_train[:task.train.train_images]  # [:None] is all of them
        record.train_images = len(x_train)
        if vae is not None:  # the objective: validation BCE of the mean decoding, at the best epoch
            fit = fit_vae(vae, x_train, data.x_val, epochs=task.train.epochs,
                          batch_size=task.train.batch_size, patience=task.train.patience,
                          seed=task.seed)
            loss, record.epochs = fit.bce, fit.epochs
            if math.isfinite(loss):
                record.kl = vae_kl(vae.stats, data.x_val, task.train.batch_size)
        else:
            fit = fit_autoencoder(
                autoencoder, x_train, data.x_val, epochs=task.train.epochs,
                batch_size=task.train.batch_size, patience=task.train.patience, seed=task.seed,
            )
            loss, record.epochs = fit.best, fit.epochs
        record.fit_seconds = round(time.perf_counter() - fit_start, 3)
        if not math.isfinite(loss):
            record.error, record.failure = "loss is NaN or infinite", "nan"
        else:
            if task.keep_model:  # ok only once the model exists: a failed save is a failure
                model_bytes = model_to_bytes(autoencoder, optimizer=vae is not None)
                if keep_warm:
                    warm_models.keep(digest(model_bytes), autoencoder, start_state)
            record.rec_loss = float(loss)
            record.loc = loc_of_shape(bottleneck)
            record.flops = forward_flops(genome, shape, task.train.model)
            if task.measure_latency:  # the `latency` objective
                record.latency_ms = round(inference_latency_ms(autoencoder, data.x_val[0]), 4)
            record.status, record.failure = "ok", ""
    except Exception as err:  # noqa: BLE001 - any failure of one genome must not stop the run
        record.error, record.failure = one_line(err), failure_kind(err)
    finally:
        end_session()
    record.seconds = round(time.perf_counter() - start, 3)
    return EvalResult(record, model_bytes)


def run_task(task: EvalTask) -> EvalResult:
    """The unit of work an executor runs: load (cached) data, then evaluate."""
    try:
        data = cached_dataset(task.data)
    except Exception as err:  # noqa: BLE001
        return EvalResult(failed_record(task, f"data: {one_line(err)}", failure="io"))
    with float32_keras():  # a notebook's dtype policy neither changes the numbers nor is lost
        return evaluate_genome(task, data)
