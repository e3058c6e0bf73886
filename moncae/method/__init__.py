"""The method itself, pure Python (no TensorFlow, no Keras): the genome and its operators,
what a genome builds (bottleneck, LOC), the objectives (hypervolume and exclusive
contributions), parent selection, elitism and breeding, and which parent each layer of a
crossover child inherits its weights from."""
