"""Scale-out with `tf.distribute` (issue 11): `--distribute none|mirrored|multi-worker`.

- `none`: TensorFlow's default strategy, the run as it always was.
- `mirrored`: `MirroredStrategy` over every local GPU. Without a GPU it has
  one replica on the CPU (the log says so); logical CPU devices made with
  `tf.config.set_logical_device_configuration` count as replicas, which is
  how the tests get two replicas on one CPU.
- `multi-worker`: `MultiWorkerMirroredStrategy` across processes or machines
  described by `TF_CONFIG` (README, "Several GPUs and several machines");
  each worker mirrors over its own GPUs (one CPU replica without). Every
  worker runs the same command; it must create the strategy before any other
  TensorFlow op, so `trainer.train` does that first.

The global batch is `TrainConfig.batch_size` (the paper's 32): each step
takes one global batch and gives each of the R replicas `batch_size / R`
consecutive examples of it (R must divide the batch size). Keras divides
each replica's mean loss by R and sums the gradients, so a step equals one
step on the whole batch, up to float rounding (an epoch's last, short batch
is split as evenly as tf.data can; slices of unequal size still weigh 1/R
each). Workers do not read different files: the auto-shard policy is `DATA`
(`shard_by_batch`), so every worker runs the whole input pipeline (same
seeded shuffle, crops and flips) and keeps its replicas' slices of each
global batch. `keras_distribute.py` holds what Keras 3 needs to `fit` so.

SSE (`layers/sse.py`) draws partners within the batch it sees, which under a
strategy is the replica's own `batch_size / R` examples, not the global batch:
with R replicas an example can swap features only with the other
`batch_size / R - 1` examples of its slice. Dropout and SSE draw from the same
seed on every replica (Keras' `SeedGenerator` state is mirrored), so the
random stream differs from a one-replica run: a run on R replicas is
statistically, not bitwise, the run on one. Batch normalization (DenseNet121)
normalizes over each replica's slice too (Keras' default, unsynchronized).
tests/test_distribute.py compares one and two replicas on a model without
dropout and SSE, where they agree to float rounding.

Only the chief writes the run folder (best_model.keras, metrics.json,
predictions.tsv, history.csv, checkpoint/, logs/, ...). The other workers
save at the same points, as TensorFlow's convention for this strategy asks
(a save may read values synchronized over all workers), but into their own
scratch folder, `worker_dir`, which also holds their resume state (another
machine need not see the chief's disk); they do not evaluate. `distribute.json` records the
workers and replicas; a run resumes only on the same ones (resume is exact
only there), see `check_layout`. A worker that dies makes the others fail
within about 10 s (the coordination service's heartbeat timeout) instead of
hanging; TensorFlow then needs every worker restarted with the same command,
and the run resumes after its last finished epoch. At start the workers wait
for each other at most `CRISIS_KERAS_REGISTER_TIMEOUT` seconds (600).
"""

import json
import os
from pathlib import Path
from typing import Dict, Optional

from crisis_keras.training.config import DISTRIBUTE as STRATEGIES

DISTRIBUTE_FILE = "distribute.json"
WORKERS_DIR = ".workers"  # <output_dir>/.workers/<run name>/<task>: non-chief writes
_JOBS = ("chief", "worker")
REGISTER_TIMEOUT_ENV = "CRISIS_KERAS_REGISTER_TIMEOUT"
REGISTER_TIMEOUT_SECONDS = 600.0

_strategies: Dict[str, object] = {}


class DistributeError(ValueError):
    """A strategy that cannot be set up, or a run folder of another layout."""


def read_tf_config(text: Optional[str]) -> dict:
    """The parsed `TF_CONFIG`, checked: a cluster of chief/worker addresses and
    this process's task in it."""
    example = ('TF_CONFIG=\'{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
               '"task": {"type": "worker", "index": 0}}\'')
    if not text or not text.strip():
        raise DistributeError(
            "--distribute multi-worker needs TF_CONFIG, the cluster and this worker's "
            f"place in it, e.g. {example} (index 1 on the second machine).")
    try:
        spec = json.loads(text)
    except ValueError as error:
        raise DistributeError(f"TF_CONFIG is not JSON ({error}): {text!r}") from None
    cluster = spec.get("cluster") if isinstance(spec, dict) else None
    task = spec.get("task") if isinstance(spec, dict) else None
    if not isinstance(cluster, dict) or not any(cluster.get(job) for job in _JOBS):
        raise DistributeError(f"TF_CONFIG has no cluster with a 'worker' list; expected {example}.")
    for job, addresses in cluster.items():
        if job not in _JOBS:
            raise DistributeError(
                f"TF_CONFIG cluster job {job!r} is not supported: MultiWorkerMirroredStrategy "
                f"takes {' and '.join(_JOBS)} tasks only.")
        if (not isinstance(addresses, list) or not addresses
                or not all(isinstance(a, str) and ":" in a for a in addresses)):
            raise DistributeError(
                f"TF_CONFIG cluster {job!r} must be a list of 'host:port' addresses, "
                f"got {addresses!r}.")
    if not isinstance(task, dict) or task.get("type") not in cluster:
        raise DistributeError(
            f"TF_CONFIG task must name a job of the cluster ({sorted(cluster)}), got {task!r}.")
    index = task.get("index")
    if not isinstance(index, int) or not 0 <= index < len(cluster[task["type"]]):
        raise DistributeError(
            f"TF_CONFIG task index must be 0..{len(cluster[task['type']]) - 1} for job "
            f"{task['type']!r}, got {index!r}.")
    return spec


def strategy_for(name: str):
    """The strategy of `--distribute name`, created once per process."""
    if name not in STRATEGIES:
        raise DistributeError(f"--distribute must be one of {STRATEGIES}, got {name!r}.")
    if name not in _strategies:
        _strategies[name] = _create(name)
    return _strategies[name]


def _create(name: str):
    import tensorflow as tf

    if name == "none":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([d.name for d in devices])
    spec = read_tf_config(os.environ.get("TF_CONFIG"))
    timeout = register_timeout()
    _configure_coordination(spec["cluster"], timeout)
    try:
        return tf.distribute.MultiWorkerMirroredStrategy()
    except tf.errors.DeadlineExceededError:
        raise DistributeError(
            f"not every worker of TF_CONFIG {spec['cluster']} started within {timeout:g} s: "
            "start each with its own TF_CONFIG task index (the wait is "
            f"{REGISTER_TIMEOUT_ENV}, in seconds).") from None
    except RuntimeError as error:
        if "program startup" not in str(error):
            raise
        raise DistributeError(
            "--distribute multi-worker must create its strategy before TensorFlow runs "
            "anything in the process (collective ops are configured at start-up): train "
            "one run per process, or call distribute.strategy_for first.") from None


def register_timeout() -> float:
    """Seconds the workers wait for each other at start (`CRISIS_KERAS_REGISTER_TIMEOUT`)."""
    value = os.environ.get(REGISTER_TIMEOUT_ENV, "")
    try:
        return float(value) if value.strip() else REGISTER_TIMEOUT_SECONDS
    except ValueError:
        raise DistributeError(f"{REGISTER_TIMEOUT_ENV} must be seconds, got {value!r}.") from None


def _configure_coordination(cluster: dict, timeout: float) -> None:
    """TensorFlow's coordination service as MultiWorkerMirroredStrategy sets it
    up, plus a bounded wait for the workers at start: without it a worker
    whose peers never start waits forever (and ignores SIGTERM meanwhile).
    A dead peer is found by the service's heartbeats (about 10 s)."""
    try:  # TensorFlow internals (2.21); without them, TensorFlow's defaults
        from tensorflow.compiler.xla.tsl.protobuf import coordination_config_pb2
        from tensorflow.python.distribute import multi_worker_util
        from tensorflow.python.eager import context
        from tensorflow.python.training.server_lib import ClusterSpec
    except ImportError:
        return
    if context.context().coordination_service is not None:
        return
    spec = ClusterSpec(cluster)
    context.context().configure_coordination_service(
        service_type="standalone",
        service_leader=multi_worker_util.coordination_leader(spec),
        coordinated_jobs=[
            coordination_config_pb2.CoordinatedJob(name=job, num_tasks=spec.num_tasks(job))
            for job in _JOBS if job in spec.jobs],
        cluster_register_timeout_in_ms=int(timeout * 1000),
    )
    config = getattr(context.context(), "_coordination_service_config", None)
    if config is not None:
        config.cluster_register_with_barrier = True  # the timeout applies to the start


def is_multi_worker(strategy) -> bool:
    import tensorflow as tf

    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def is_distributed(strategy) -> bool:
    """False for the default strategy (`--distribute none`)."""
    import tensorflow as tf

    return isinstance(strategy, (tf.distribute.MirroredStrategy,
                                 tf.distribute.MultiWorkerMirroredStrategy))


def task(strategy) -> Optional[str]:
    """`worker-1` (job-index) of this process in a multi-worker run, else None."""
    if not is_multi_worker(strategy):
        return None
    resolver = strategy.cluster_resolver
    return f"{resolver.task_type}-{resolver.task_id}"


def num_workers(strategy) -> int:
    if not is_multi_worker(strategy):
        return 1
    jobs = strategy.cluster_resolver.cluster_spec().as_dict()
    return sum(len(jobs.get(job, ())) for job in _JOBS)


def is_chief(strategy) -> bool:
    """True but for the non-chief workers of a multi-worker run (the chief is
    task `chief-0`, or `worker-0` in a cluster without a chief job)."""
    if not is_multi_worker(strategy):
        return True
    resolver = strategy.cluster_resolver
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "chief" or (not has_chief and resolver.task_id == 0)


def worker_dir(run_dir, strategy) -> Path:
    """Where this process writes: the run folder for the chief, for another
    worker its scratch folder `<output_dir>/.workers/<run name>/<task>`."""
    run_dir = Path(run_dir)
    if is_chief(strategy):
        return run_dir
    return run_dir.parent / WORKERS_DIR / run_dir.name / task(strategy)


def layout(strategy, batch_size: int) -> dict:
    """What `distribute.json` records; refuses a batch the replicas cannot share."""
    replicas = strategy.num_replicas_in_sync
    if batch_size % replicas:
        raise DistributeError(
            f"--batch-size {batch_size} (the global batch) does not split into "
            f"{replicas} replicas; use a multiple of {replicas}.")
    strategy_name = ("multi-worker" if is_multi_worker(strategy)
                     else "mirrored" if is_distributed(strategy) else "none")
    return {"strategy": strategy_name, "workers": num_workers(strategy), "replicas": replicas,
            "global_batch": batch_size, "per_replica_batch": batch_size // replicas}


def describe(strategy, batch_size: int) -> str:
    """The run-log line: strategy, workers, replicas, per-replica batch."""
    shape = layout(strategy, batch_size)
    devices = ", ".join(strategy.extended.worker_devices)
    line = (f"distribute {shape['strategy']}: {shape['workers']} worker(s), "
            f"{shape['replicas']} replica(s) ({devices} here); global batch "
            f"{batch_size} = {shape['per_replica_batch']} per replica (SSE partners come "
            "from the replica's own examples)")
    if shape["strategy"] == "mirrored" and "GPU" not in devices.upper():
        line += "; no GPU found: CPU only"
    if is_multi_worker(strategy):
        line += f"; this is {task(strategy)}" + (" (chief)" if is_chief(strategy) else
                                                  ", writing to its scratch folder")
    return line


def check_layout(folder, shape: dict, started: bool) -> None:
    """Writes `distribute.json` (not for `--distribute none`: a folder without
    it ran on one replica), or refuses to resume a started run on other
    workers or replicas."""
    path = Path(folder) / DISTRIBUTE_FILE
    if started:
        saved = (json.loads(path.read_text()) if path.exists()
                 else {"strategy": "none", "workers": 1, "replicas": 1})
        differing = [k for k in ("workers", "replicas") if saved.get(k) != shape[k]]
        if differing:
            raise DistributeError(
                f"{folder} was trained on {saved['workers']} worker(s) with "
                f"{saved['replicas']} replica(s), not {shape['workers']} with "
                f"{shape['replicas']}: a run resumes exactly only on the layout it "
                "started with; restart it with that many, or use another --run-name.")
        if path.exists():
            return
    if shape["strategy"] == "none":
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(DISTRIBUTE_FILE + ".tmp")
    tmp.write_text(json.dumps(shape, indent=2) + "\n")
    tmp.replace(path)


def shard_by_batch(dataset, strategy):
    """`dataset` with the `DATA` auto-shard policy under a strategy: each worker
    keeps its replicas' slices of every global batch (not its own files)."""
    import tensorflow as tf

    if not is_distributed(strategy):
        return dataset
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def gather_ints(strategy, values):
    """`[replicas, len(values)]` int64: `values` of every replica, in replica
    order (a collective step: every worker must call it)."""
    import tensorflow as tf

    local = tf.constant([list(values)], tf.int64)
    return strategy.gather(strategy.run(lambda: tf.identity(local)), axis=0).numpy()


def barrier(strategy):
    """A callable that returns once every worker has called it (None with one worker)."""
    if num_workers(strategy) == 1:
        return None
    return lambda: gather_ints(strategy, [0])
