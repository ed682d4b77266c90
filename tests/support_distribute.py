"""Test support for tests/test_distribute.py: tiny run configurations, worker
processes on 127.0.0.1, and (run as a script) the two-replica process.

`python tests/support_distribute.py two-replicas DATA_DIR OUT_DIR` makes two
logical CPU devices before TensorFlow starts, then trains the tiny
deterministic model with MirroredStrategy over both and records which
partners SSE draws per replica, with two replicas and with one; it writes
OUT_DIR/result.json. `python tests/support_distribute.py killed-worker
TRAIN_ARGS...` is `python -m crisis_keras.train TRAIN_ARGS...` that SIGKILLs
itself at the third step of the second epoch, after the first epoch's
checkpoint.
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(task="severity", model="sse_cross", text_backbone="tiny", image_backbone="tiny",
            image_weights=None, image_size=32, resize_to=36, sequence_length=16,
            batch_size=8, epochs=2, run_name="run")
# No dropout, SSE off: one replica and R replicas draw no random numbers, so
# they differ only by float rounding.
DETERMINISTIC = dict(TINY, model="ablation_no_dropout", sse_p0=0.0)


def assert_nested_close(actual, expected, tol):
    """Nested metric dicts equal, floats to `tol`."""
    import numpy as np

    assert actual.keys() == expected.keys()
    for key, value in expected.items():
        if isinstance(value, dict):
            assert_nested_close(actual[key], value, tol)
        elif isinstance(value, float) or (isinstance(value, list) and value
                                          and not isinstance(value[0], str)):
            np.testing.assert_allclose(actual[key], value, atol=tol, rtol=0, err_msg=key)
        else:
            assert actual[key] == value, key


def cli_args(values, data_dir, output_dir):
    """`python -m crisis_keras.train` flags of TrainConfig `values`."""
    args = ["--data-dir", str(data_dir), "--output-dir", str(output_dir)]
    for key, value in values.items():
        flag = "--" + key.replace("_", "-")
        args += [flag, "none" if value is None else str(value)]
    return args


def free_ports(count):
    """`count` TCP ports free on 127.0.0.1 now."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def tf_config(ports, index):
    return json.dumps({"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
                       "task": {"type": "worker", "index": index}})


def environment(**extra):
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    env.update(TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(ROOT), **extra)
    return env


def start(command, log_path, **env):
    """A process running `command` (argv after the interpreter), output to `log_path`."""
    log = open(log_path, "w")
    return subprocess.Popen([sys.executable] + list(command), cwd=ROOT, env=environment(**env),
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def start_workers(args, ports, log_dir, prefix, commands=None):
    """One `crisis_keras.train` process per port (worker i = index i); `commands[i]`
    replaces worker i's `-m crisis_keras.train`."""
    processes = []
    for index in range(len(ports)):
        command = (commands or {}).get(index, ["-m", "crisis_keras.train"]) + list(args)
        processes.append(start(command, Path(log_dir) / f"{prefix}-worker{index}.log",
                               TF_CONFIG=tf_config(ports, index)))
    return processes


def wait(processes, timeout):
    """Return codes, killing every process still running after `timeout` seconds."""
    codes = []
    try:
        for process in processes:
            codes.append(process.wait(timeout=timeout))
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    return codes


# --- the two-replica process -------------------------------------------------------


def _sse_partners(strategy, batch=8, draws=25):
    """Per replica, the batch positions SSE took features from (p0 = 1, rho = 1)."""
    import numpy as np
    import tensorflow as tf

    from crisis_keras.layers import StochasticSharedEmbedding

    with strategy.scope():
        layer = StochasticSharedEmbedding(p0=1.0, rho=1.0, seed=3)
    ids = np.arange(batch, dtype="float32")[:, None]
    batch_ds = tf.data.Dataset.from_tensors((ids, ids + 100.0, np.zeros(batch, "int32")))
    dataset = strategy.experimental_distribute_dataset(batch_ds.repeat(draws))

    @tf.function
    def step(image, text, labels):
        return strategy.run(lambda i, t, y: layer([i, t, y], training=True),
                            args=(image, text, labels))

    seen = {}
    for batch_values in dataset:
        image_out, text_out = step(*batch_values)
        inputs = strategy.experimental_local_results(batch_values[0])
        for replica, (own, new_image, new_text) in enumerate(zip(
                inputs, strategy.experimental_local_results(image_out),
                strategy.experimental_local_results(text_out))):
            own = own.numpy()[:, 0].astype(int)
            moved_image = new_image.numpy()[:, 0].astype(int)
            moved_text = new_text.numpy()[:, 0].astype(int) - 100
            source = np.where(moved_image != own, moved_image, moved_text)
            entry = seen.setdefault(replica, {"own": sorted(own.tolist()), "partners": set(),
                                              "kept": 0})
            entry["partners"].update(source.tolist())
            entry["kept"] += int((source == own).sum())
    return {str(r): {"own": e["own"], "partners": sorted(e["partners"]), "kept": e["kept"]}
            for r, e in seen.items()}


def _two_replica_main(data_dir, out_dir):
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

    from crisis_keras.training import distribute
    from crisis_keras.training.config import TrainConfig
    from crisis_keras.training.trainer import train

    out = Path(out_dir)
    logs = []
    config = TrainConfig(data_dir=str(data_dir), output_dir=str(out),
                         **dict(DETERMINISTIC, distribute="mirrored"))
    result = {"run_dir": str(train(config, announce=logs.append)), "logs": logs,
              "sse_two_replicas": _sse_partners(distribute.strategy_for("mirrored")),
              "sse_one_replica": _sse_partners(distribute.strategy_for("none"))}
    (out / "result.json").write_text(json.dumps(result, indent=2))


def _killed_worker_main(argv):
    import signal

    import keras

    from crisis_keras import train as cli
    from crisis_keras.training.trainer import train

    class KillSelf(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_train_batch_end(self, batch, logs=None):
            if self.epoch == 1 and batch == 2:
                os.kill(os.getpid(), signal.SIGKILL)

    train(cli.config_from_args(cli.build_parser().parse_args(argv)), extra_callbacks=[KillSelf()])


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    if sys.argv[1] == "two-replicas":
        _two_replica_main(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "killed-worker":
        _killed_worker_main(sys.argv[2:])
    else:
        raise SystemExit(f"unknown command {sys.argv[1]!r}")
