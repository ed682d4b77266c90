"""tf.distribute (issue 11, items 1-2; training/distribute.py), for real on this machine:

- MirroredStrategy over two logical CPU devices (one process) against one replica;
- SSE draws partners within each replica's slice of the global batch;
- two MultiWorkerMirroredStrategy workers on 127.0.0.1: both finish, the
  chief's results equal a one-process run with the same global batch, only
  the chief writes the run folder, and its model exports;
- a worker killed after the first epoch's checkpoint: the survivor fails
  fast, both restarted resume and end where the uninterrupted run ends;
- a worker whose peers never start gives up (CRISIS_KERAS_REGISTER_TIMEOUT).

The model is the tiny one with no dropout and SSE off (`support_distribute.
DETERMINISTIC`): one replica and two then draw no random numbers, so they
differ only by float rounding. Measured here (float32, CPU): metrics and
predicted classes identical, probabilities within 1e-6 (the last digit
predictions.tsv keeps), per-epoch losses within 1.2e-7; asserted with `TOL`.
With SSE or dropout on, R replicas draw other random numbers than one
(training/distribute.py), so those runs agree statistically, not to a tolerance.

The processes start together (module fixture `launched`), so that the whole
file takes about as long as its slowest chain, the killed run and its
restart: about 2.5 minutes on 2 idle cores (some 4.5 CPU-minutes in all).
"""

import json
import threading
import time
import types

import numpy as np
import pandas as pd
import pytest

import support_distribute as sd
from crisis_keras.data.demo import make_demo_data
from crisis_keras.training import distribute, resume
from crisis_keras.training.config import TrainConfig

TOL = {"probabilities": 2e-6, "history": 1e-6, "metrics": 1e-9}
TIMEOUT = 900  # seconds, per phase: never hang (2-core CI shared with other jobs took > 420)
RUN_FILES = {"best_model.keras", "checkpoint", "classes.json", "config.json",
             "confusion_matrix_dev.png", "confusion_matrix_test.png", "distribute.json",
             "history.csv", "logs", "metrics.json", "model_summary.txt", "predictions.tsv",
             "timing.json"}


def _log(path):
    return path.read_text() if path.exists() else ""


@pytest.fixture(scope="module")
def launched(tmp_path_factory):
    """Starts the two-replica process, the uninterrupted two-worker run and the
    run whose worker 1 kills itself; trains the one-process reference meanwhile."""
    from crisis_keras.training.trainer import train

    root = tmp_path_factory.mktemp("distribute")
    data = make_demo_data(root / "demo", sizes={"train": 48, "dev": 16, "test": 16})
    args = sd.cli_args(dict(sd.DETERMINISTIC, distribute="multi-worker"), data, root / "workers")
    killed_args = sd.cli_args(dict(sd.DETERMINISTIC, distribute="multi-worker"), data,
                              root / "killed")
    ports = sd.free_ports(6)  # at once: all different
    two_ports, killed_ports, alone_ports = ports[:2], ports[2:4], ports[4:]
    processes = {
        "replicas": [sd.start([str(sd.Path(sd.__file__)), "two-replicas", str(data),
                               str(root / "replicas")], root / "replicas.log")],
        "workers": sd.start_workers(args, two_ports, root, "workers"),
        "killed": sd.start_workers(killed_args, killed_ports, root, "killed", commands={
            1: [str(sd.Path(sd.__file__)), "killed-worker"]}),
        "alone": [sd.start(["-m", "crisis_keras.train"] + sd.cli_args(
            dict(sd.DETERMINISTIC, distribute="multi-worker"), data, root / "alone"),
            root / "alone.log", TF_CONFIG=sd.tf_config(alone_ports, 0),
            CRISIS_KERAS_REGISTER_TIMEOUT="5")],
    }
    state = types.SimpleNamespace(root=root, data=data, processes=processes, codes={})

    def restart_when_killed():  # both workers, as TensorFlow requires, as soon as they end
        codes = sd.wait(processes["killed"], TIMEOUT)
        chief = root / "killed" / "run"  # as the kill left it, before the restart goes on
        state.after_kill = {"state": json.loads((chief / "checkpoint" / "state.json").read_text()),
                            "metrics": (chief / "metrics.json").exists()}
        state.codes["killed"] = codes
        processes["restarted"] = sd.start_workers(killed_args, sd.free_ports(2), root, "restarted")

    restarter = threading.Thread(target=restart_when_killed, daemon=True)
    restarter.start()
    try:
        state.reference = train(TrainConfig(data_dir=str(data), output_dir=str(root / "one"),
                                            **sd.DETERMINISTIC), announce=lambda *_: None)
        yield state
    finally:
        restarter.join(timeout=0)
        for group in list(processes.values()):  # kill what a failed test left running
            try:
                sd.wait(group, timeout=0)
            except sd.subprocess.TimeoutExpired:
                pass


def _finished(launched, name):
    """Return codes of a launched group, waiting (bounded) the first time."""
    if name not in launched.codes:
        launched.codes[name] = sd.wait(launched.processes[name], TIMEOUT)
    return launched.codes[name]


def _restarted(launched):
    """Return codes of the restarted workers of the killed run."""
    deadline = time.monotonic() + TIMEOUT
    while "restarted" not in launched.processes and time.monotonic() < deadline:
        time.sleep(0.5)
    return _finished(launched, "restarted")


def assert_same_run(actual, expected):
    """Two run folders with equal metrics, predictions and history (to `TOL`)."""
    sd.assert_nested_close(json.loads((actual / "metrics.json").read_text()),
                         json.loads((expected / "metrics.json").read_text()), TOL["metrics"])
    a = pd.read_csv(actual / "predictions.tsv", sep="\t")
    b = pd.read_csv(expected / "predictions.tsv", sep="\t")
    assert list(a["predicted"]) == list(b["predicted"])
    probabilities = [c for c in b.columns if c.startswith("p_")]
    np.testing.assert_allclose(a[probabilities], b[probabilities], atol=TOL["probabilities"])
    pd.testing.assert_frame_equal(pd.read_csv(actual / "history.csv"),
                                  pd.read_csv(expected / "history.csv"),
                                  check_exact=False, atol=TOL["history"], rtol=0)


# --- no processes --------------------------------------------------------------------


@pytest.mark.parametrize("tf_config,message", [
    (None, "needs TF_CONFIG"),
    ("{not json", "not JSON"),
    ('{"task": {"type": "worker", "index": 0}}', "no cluster"),
    ('{"cluster": {"worker": ["127.0.0.1:1"]}, "task": {"type": "worker", "index": 1}}',
     "index must be 0..0"),
    ('{"cluster": {"worker": ["127.0.0.1:1"], "ps": ["127.0.0.1:2"]}, '
     '"task": {"type": "worker", "index": 0}}', "'ps' is not supported"),
    ('{"cluster": {"worker": ["nohost"]}, "task": {"type": "worker", "index": 0}}', "host:port"),
])
def test_multi_worker_refuses_a_missing_or_malformed_tf_config(monkeypatch, tf_config, message):
    if tf_config is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", tf_config)
    with pytest.raises(distribute.DistributeError, match=message):
        distribute.strategy_for("multi-worker")


def test_unknown_strategy_and_uneven_batch_are_refused():
    with pytest.raises(distribute.DistributeError, match="must be one of"):
        distribute.strategy_for("parameter-server")
    with pytest.raises(ValueError, match="distribute must be one of"):
        TrainConfig(distribute="horovod")
    three = types.SimpleNamespace(num_replicas_in_sync=3)
    with pytest.raises(distribute.DistributeError, match="multiple of 3"):
        distribute.layout(three, 32)
    assert distribute.layout(types.SimpleNamespace(num_replicas_in_sync=4), 32)[
        "per_replica_batch"] == 8


def test_datasets_are_sharded_by_batch_under_a_strategy():
    """DATA, not FILE: each worker keeps its replicas' slices of every global
    batch (which the two-worker run's equality with one process relies on)."""
    import tensorflow as tf

    dataset = tf.data.Dataset.range(16).batch(8)
    assert distribute.shard_by_batch(dataset, distribute.strategy_for("none")) is dataset
    sharded = distribute.shard_by_batch(dataset, distribute.strategy_for("mirrored"))
    assert (sharded.options().experimental_distribute.auto_shard_policy
            == tf.data.experimental.AutoShardPolicy.DATA)
    assert [b.numpy().tolist() for b in sharded] == [b.numpy().tolist() for b in dataset]


def test_resume_on_another_layout_is_refused(tmp_path):
    two = {"strategy": "multi-worker", "workers": 2, "replicas": 2}
    distribute.check_layout(tmp_path, two, started=False)
    distribute.check_layout(tmp_path, two, started=True)  # the same layout resumes
    with pytest.raises(distribute.DistributeError, match="2 worker.*not 1 with 1"):
        distribute.check_layout(tmp_path, {"strategy": "none", "workers": 1, "replicas": 1},
                                started=True)
    one = {"strategy": "none", "workers": 1, "replicas": 1}
    distribute.check_layout(tmp_path / "none", one, started=False)
    assert not (tmp_path / "none" / distribute.DISTRIBUTE_FILE).exists()  # runs as before
    old = tmp_path / "old"  # a run folder without distribute.json: one replica
    with pytest.raises(distribute.DistributeError, match="trained on 1 worker"):
        distribute.check_layout(old, two, started=True)


class _Weights:
    def save_weights(self, path, overwrite=True):
        path.write_text("weights")


def test_workers_agree_on_the_last_epoch_every_worker_wrote(tmp_path):
    """A kill between the barrier and a worker's commit leaves it one epoch
    behind with that epoch pending: it takes it, as the others have it."""
    ahead, behind = tmp_path / "chief", tmp_path / "worker"
    for folder in (ahead, behind):
        state = resume.TrainingState(completed_epochs=1)
        resume.save_checkpoint(_Weights(), state, folder, barrier=lambda: None)
    state = resume.TrainingState.load(ahead)
    state.completed_epochs = 2
    resume.save_checkpoint(_Weights(), state, ahead, barrier=lambda: None)
    behind_state = resume.TrainingState.load(behind)
    behind_state.completed_epochs = 2
    behind_state.weights_file = "epoch-0002.weights.h5"
    (behind / behind_state.weights_file).write_text("weights")
    behind_state.save(behind, resume.PENDING_FILE)  # killed before os.replace
    table = [[2, -1], [1, 2]]
    agreed = resume.agree_on_epoch(resume.TrainingState.load(behind), behind, lambda _: table)
    assert agreed.completed_epochs == 2
    assert resume.TrainingState.load(behind).completed_epochs == 2
    assert not (behind / resume.PENDING_FILE).exists()
    assert not (behind / "epoch-0001.weights.h5").exists()
    # no worker committed epoch 3: a pending epoch 3 is dropped
    resume.TrainingState(completed_epochs=3).save(ahead, resume.PENDING_FILE)
    agreed = resume.agree_on_epoch(resume.TrainingState.load(ahead), ahead,
                                   lambda _: [[2, 3], [2, -1]])
    assert agreed.completed_epochs == 2 and not (ahead / resume.PENDING_FILE).exists()
    with pytest.raises(ValueError, match="not of one run"):
        resume.agree_on_epoch(resume.TrainingState(), tmp_path / "empty",
                              lambda _: [[0, -1], [2, -1]])


def test_flag_config_run_name_and_experiments_pass_it_through():
    from crisis_keras import train as train_cli
    from experiments import paper_tables, spec

    args = train_cli.build_parser().parse_args(["--task", "severity", "--distribute", "mirrored"])
    config = train_cli.config_from_args(args)
    assert config.distribute == "mirrored" and config.batch_size == 32  # the global batch
    assert config.resolved_run_name().endswith("-mirrored-seed0")
    assert TrainConfig().resolved_run_name() == "severity-sse_cross-settingA-seed0"
    with pytest.raises(SystemExit):
        train_cli.build_parser().parse_args(["--task", "severity", "--distribute", "x"])
    run = paper_tables.build_parser().parse_args(
        ["run", "--table", "4", "--distribute", "multi-worker"])
    assert run.distribute == "multi-worker"
    named = spec.TABLE_4.named_configs()[0]
    assert named.train_config(distribute=run.distribute).distribute == "multi-worker"


# --- processes -----------------------------------------------------------------------


def test_mirrored_over_two_cpus_matches_one_replica(launched):
    assert _finished(launched, "replicas") == [0], _log(launched.root / "replicas.log")[-3000:]
    result = json.loads((launched.root / "replicas" / "result.json").read_text())
    line = next(m for m in result["logs"] if "distribute mirrored" in m)
    assert "2 replica(s)" in line and "4 per replica" in line and "no GPU found" in line
    run_dir = sd.Path(result["run_dir"])
    assert json.loads((run_dir / "distribute.json").read_text())["replicas"] == 2
    assert_same_run(run_dir, launched.reference)


def test_sse_draws_partners_within_each_replica(launched):
    assert _finished(launched, "replicas") == [0]
    result = json.loads((launched.root / "replicas" / "result.json").read_text())
    two, one = result["sse_two_replicas"], result["sse_one_replica"]
    assert [two[r]["own"] for r in ("0", "1")] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    for replica in two.values():  # p0 = 1: every example moves, within its own slice
        assert replica["partners"] == replica["own"] and replica["kept"] == 0
    assert one["0"]["partners"] == list(range(8))  # one replica: the whole batch


def test_two_workers_finish_and_match_one_process(launched):
    codes = _finished(launched, "workers")
    logs = [_log(launched.root / f"workers-worker{i}.log") for i in (0, 1)]
    assert codes == [0, 0], logs[0][-2000:] + logs[1][-2000:]
    chief = launched.root / "workers" / "run"
    assert "2 worker(s), 2 replica(s)" in logs[0] and "this is worker-0 (chief)" in logs[0]
    assert "worker-1 done; the chief writes" in logs[1]
    assert_same_run(chief, launched.reference)
    # Only the chief wrote the run folder; worker 1 its scratch folder, without evaluating.
    assert {p.name for p in chief.iterdir()} == RUN_FILES
    scratch = launched.root / "workers" / ".workers" / "run" / "worker-1"
    names = {p.name for p in scratch.iterdir()}
    assert {"best_model.keras", "checkpoint", "distribute.json", "history.csv"} <= names
    assert not names & {"metrics.json", "predictions.tsv", "timing.json"}
    assert json.loads((chief / "distribute.json").read_text()) == {
        "strategy": "multi-worker", "workers": 2, "replicas": 2, "global_batch": 8,
        "per_replica_batch": 4}
    assert json.loads((chief / "config.json").read_text())["distribute"] == "multi-worker"


def test_a_model_trained_on_two_workers_exports(launched, tmp_path):
    import importlib

    import tensorflow as tf

    importlib.import_module("tensorflow_text")  # registers the full SavedModel's TF Text ops

    from crisis_keras import export
    from crisis_keras.training.trainer import load_data

    assert _finished(launched, "workers") == [0, 0]
    chief = launched.root / "workers" / "run"
    summary = export.export_run(chief, tmp_path / "export", token_ids=False)
    served = tf.saved_model.load(summary["saved_model"])
    predictions = pd.read_csv(chief / "predictions.tsv", sep="\t")
    dev = predictions[predictions["split"] == "dev"].head(4)
    table = load_data(TrainConfig.from_json_file(chief / "config.json")).splits["dev"].head(4)
    assert list(table["image_id"].astype(str)) == list(dev["image_id"].astype(str))
    images = [sd.Path(p).read_bytes() for p in table["image_path"]]
    out = served.signatures["serving_default"](text=tf.constant(list(table["tweet_text"])),
                                               image_bytes=tf.constant(images))
    columns = [f"p_{c}" for c in summary["class_names"]]
    np.testing.assert_allclose(out["probabilities"].numpy(), dev[columns], atol=1e-5)


def test_a_killed_worker_restarted_resumes_to_the_uninterrupted_result(launched):
    deadline = time.monotonic() + TIMEOUT  # the restarter records the killed run, then restarts
    while "killed" not in launched.codes and time.monotonic() < deadline:
        time.sleep(0.5)
    codes = launched.codes["killed"]
    logs = [_log(launched.root / f"killed-worker{i}.log") for i in (0, 1)]
    assert codes[1] == -9, logs[1][-2000:]  # SIGKILL, in the second epoch
    assert codes[0] == 1, logs[0][-2000:]  # the survivor fails instead of hanging
    assert "a worker of this run stopped" in logs[0] and "restart every worker" in logs[0]
    chief = launched.root / "killed" / "run"
    assert launched.after_kill["state"]["completed_epochs"] == 1
    assert not launched.after_kill["metrics"]

    codes = _restarted(launched)
    logs = [_log(launched.root / f"restarted-worker{i}.log") for i in (0, 1)]
    assert codes == [0, 0], logs[0][-2000:] + logs[1][-2000:]
    assert f"resuming {chief} after epoch 1" in logs[0]
    assert _finished(launched, "workers") == [0, 0]
    assert_same_run(chief, launched.root / "workers" / "run")


def test_a_worker_whose_peers_never_start_stops(launched):
    assert _finished(launched, "alone") == [2]
    log = _log(launched.root / "alone.log")
    assert "not every worker of TF_CONFIG" in log and "started within 5 s" in log, log[-2000:]


def test_resume_with_fewer_replicas_is_refused(launched):
    """The two-replica run folder, resumed in this one-CPU process (refused
    before anything is written)."""
    from crisis_keras.training.trainer import train

    assert _finished(launched, "replicas") == [0]
    config = TrainConfig(data_dir=str(launched.data), output_dir=str(launched.root / "replicas"),
                         **dict(sd.DETERMINISTIC, distribute="mirrored"))
    with pytest.raises(distribute.DistributeError, match="2 replica.*not 1 with 1"):
        train(config, announce=lambda *_: None)
