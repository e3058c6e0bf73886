"""Evaluating one genome: what a training is asked and returns (`records`, plain values), the
real Keras training (`train.run_task`, the only module here that loads TensorFlow) and a cheap
deterministic surrogate with the same contract (`surrogate.surrogate_task`) for tests and
benchmarks. Executors run these functions; the search loop journals their records."""
