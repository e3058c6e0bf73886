"""The method itself, pure Python (no TensorFlow, no Keras): the genome and its operators,
what a genome builds (bottleneck, LOC), the objectives (hypervolume and exclusive
contributions), parent selection, elitism and breeding, which parent each layer of a
crossover child inherits its weights from, and reconstruction losses per image with the paired
comparison of two coders on the same images."""
