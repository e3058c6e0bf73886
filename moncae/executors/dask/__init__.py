"""The `dask` executor: a generation's trainings on Dask distributed workers.

`DaskExecutor(workers=N)` starts a LocalCluster of N single-task worker processes on this
machine (by default `models_per_gpu` per GPU when there are GPUs, each seeing only its GPU);
`DaskExecutor(scheduler="tcp://host:8786")` uses a running cluster (`dask scheduler` plus
`dask worker --nthreads 1` per GPU, or several per GPU). The driver submits every task at once
and yields results in task order; workers only compute (they load the data themselves, by name,
through the task's `DataSpec`), the driver writes every file.

Results are bit-identical to the in-process local executor's (`--workers 1`; tested) because
each evaluation is seeded from (run seed, genome key), and two more things hold on every worker:
- it trains with the same TensorFlow intra-op thread count as the driver would: on CPU, TF's
  float results depend on that count (a reduction split over 1 or 2 threads sums in another
  order). By default that is the driver's count (`TF_NUM_INTRAOP_THREADS` when set, else its
  usable cores), so `TF_NUM_INTRAOP_THREADS=1` in the driver's environment gives single-threaded
  trainings under both executors. Inter-op threads (no effect on results) are 1 on the workers.
- Dask's own threads do not draw from Python's global RNG, which Keras draws layer seeds from
  (see `isolate_global_rng`).

Faults: a worker that dies mid-task (killed, out of host memory) is replaced and its task runs
again elsewhere, up to `retries` times; a task that killed its worker more often is recorded as a
failed evaluation (the run goes on). A lost scheduler stops the run with a `MoncaeError` that
says to `--resume` (every evaluation already journaled is kept).
"""

from moncae.executors.dask.executor import DEFAULT_RETRIES, DaskExecutor
from moncae.executors.dask.worker import WorkerTask
from moncae.executors.resources import gpu_assignment, training_threads, usable_cores, visible_gpus
from moncae.executors.worker_setup import WorkerSetupError, lost_evaluation

__all__ = ["DEFAULT_RETRIES", "DaskExecutor", "WorkerSetupError", "WorkerTask", "gpu_assignment",
           "lost_evaluation", "training_threads", "usable_cores", "visible_gpus"]
