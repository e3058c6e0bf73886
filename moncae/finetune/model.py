"""Fine-tune one final model: continue training from its searched weights, measure it on the
test split, score its frozen codes with the latent classifier (labeled data only), serialise it
(Keras), and keep each test image's loss. Writes no file: the caller saves what it returns (a
worker process's result goes to the driver)."""

from __future__ import annotations

import math
import time
import warnings

from moncae.config import SearchConfig
from moncae.errors import MoncaeError, one_line
from moncae.evaluation.records import evaluation_seed, failure_kind
from moncae.finetune.records import FinalModel, FinetuneOutput, FinetuneRecord, FinetuneSettings, failed_finetune
from moncae.model.decode import build_autoencoder
from moncae.model.latent import latent_classification
from moncae.model.training import (
    evaluate_loss,
    fit_autoencoder,
    make_loss,
    make_optimizer,
    model_to_bytes,
    quiet_tensorflow,
    reconstruction_losses,
)
from moncae.model.vae import build_vae, compile_vae, evaluate_vae, fit_vae

__all__ = ["finetune_model"]


def finetune_model(model: FinalModel, data, config: SearchConfig, settings: FinetuneSettings) -> FinetuneOutput:
    """Fine-tune and measure one model: its record and, when it is ok, the `.keras` file's bytes and
    each test image's loss (the search's objective loss: a VAE's BCE of its mean decoding). Never
    raises: failures come back as 'failed' records (and nothing else)."""
    import keras  # loaded (quietly) by moncae.model above

    quiet_tensorflow()
    start = time.perf_counter()
    genome, shape = model.genome, data.input_shape
    record = failed_finetune(model, shape)
    model_bytes = test_losses = None
    seed = evaluation_seed(config.seed, model.genome_key)
    keras.backend.clear_session()
    try:
        if model.model_file is None:
            raise MoncaeError("no searched model: its training failed during the search")
        keras.utils.set_random_seed(seed)
        # Rebuilding from the genome gives the encoder (it shares the autoencoder's layers)
        # and checks that the saved weights really belong to this genome.
        vae = build_vae(genome, shape, seed=seed) if config.model == "vae" else None
        autoencoder, encoder = (vae.vae, vae.encoder) if vae else build_autoencoder(genome, shape)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            autoencoder.load_weights(model.model_file)
        bs = settings.batch_size
        if vae is not None:  # continues with the run's VAE loss; the encoder gives the mean
            compile_vae(vae, make_optimizer(genome), config.loss, config.vae_eps)
            _finetune_vae(vae, data, settings, seed, record)
        else:
            autoencoder.compile(optimizer=make_optimizer(genome), loss=make_loss(config.loss),
                                jit_compile=False)
        if vae is None and settings.epochs > 0:
            searched_val = evaluate_loss(autoencoder, data.x_val, bs)
            searched_weights = autoencoder.get_weights()
            fit = fit_autoencoder(
                autoencoder, data.x_train, data.x_val, epochs=settings.epochs, batch_size=bs,
                patience=settings.patience, seed=seed,
            )
            best_val, record.epochs = fit.best, fit.epochs
            if settings.patience is not None and (not math.isfinite(best_val) or best_val > searched_val):
                autoencoder.set_weights(searched_weights)  # fine-tuning never made it better
        rec_loss = evaluate_loss(autoencoder, data.x_test, bs) if vae is None else record.rec_loss
        if not math.isfinite(rec_loss):
            raise FloatingPointError("test reconstruction loss is NaN or infinite")
        record.rec_loss = rec_loss
        # per image, for the report's paired comparison with PCA on the same images
        losses = reconstruction_losses(autoencoder, data.x_test, bs, "bce" if vae else config.loss)
        saved = model_to_bytes(autoencoder, optimizer=vae is not None)
        if data.labeled:  # unlabeled images: no classifier, cl_loss and cl_acc stay NaN
            score = latent_classification(
                encoder, data.x_train, data.y_train, data.x_test, data.y_test,
                num_classes=data.num_classes, epochs=settings.classifier_epochs, seed=seed,
                encode_batch_size=bs,
            )
            record.cl_loss, record.cl_acc = score.loss, score.accuracy
        record.status, model_bytes, test_losses = "ok", saved, losses
    except Exception as err:  # noqa: BLE001 - one failing model must not stop the others
        record.error, record.failure = one_line(err), failure_kind(err)
    finally:
        keras.backend.clear_session()
    record.finetune_seconds = round(time.perf_counter() - start, 3)
    return FinetuneOutput(record, model_bytes, test_losses)


def _finetune_vae(vae, data, settings: FinetuneSettings, seed: int, record: FinetuneRecord) -> None:
    """Fine-tune a VAE with its loss (early stopping on the validation VAE loss; the searched
    weights are kept when no epoch beats them), then measure it on test: `rec_loss` = per-pixel
    BCE of the mean decoding (as in the search), `kl` = the prior KL per latent dimension."""
    bs = settings.batch_size
    if settings.epochs > 0:
        searched_val = evaluate_vae(vae, data.x_val, bs)[0]
        searched_weights = vae.vae.get_weights()
        fit = fit_vae(vae, data.x_train, data.x_val, epochs=settings.epochs, batch_size=bs,
                      patience=settings.patience, seed=seed)
        record.epochs = fit.epochs
        if settings.patience is not None and (not math.isfinite(fit.val_loss) or fit.val_loss > searched_val):
            vae.vae.set_weights(searched_weights)
    _, record.rec_loss, record.kl = evaluate_vae(vae, data.x_test, bs)
