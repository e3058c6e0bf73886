"""Keras models from genomes: decoding (`decode`), training (`training`: loss, optimizer,
tf.data input, the early-stopped training loop; `steps`: the traced train and loss steps), and
the latent-code classifier (`latent`). The only layer besides the search's evaluation and the
report's reconstructions that imports TensorFlow."""
