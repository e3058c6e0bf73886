"""Keras models from genomes: decoding (`decode`), training (`training`: loss, optimizer,
tf.data input, early-stopped fit), and the latent-code classifier (`latent`). The only layer
besides the search's evaluation and the report's reconstructions that imports TensorFlow."""
