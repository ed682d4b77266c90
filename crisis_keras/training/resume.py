"""Resumable training state: weights, optimizer, callbacks and history per epoch.

Keras' `BackupAndRestore` restores weights and the epoch but not the state of
`ReduceLROnPlateau`, `EarlyStopping` or `ModelCheckpoint`, so a resumed run
would forget how long the dev loss has been flat and which dev loss was best.
`TrainingState` keeps all of it; `EpochSeeding` makes every random draw of an
epoch a function of (seed, epoch), so a killed run that resumes from its last
finished epoch ends exactly where an uninterrupted one does.
"""

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Dict, List, Optional

import keras

STATE_FILE = "state.json"
# Several workers (training/distribute.py): the state of an epoch whose weights
# a worker has written, committed once every worker has written its own.
PENDING_FILE = "state.pending.json"

# Attributes that make up each callback's memory across epochs.
_CALLBACK_STATE = {
    keras.callbacks.ReduceLROnPlateau: ("wait", "best", "cooldown_counter"),
    keras.callbacks.EarlyStopping: ("wait", "best", "best_epoch", "stopped_epoch"),
    keras.callbacks.ModelCheckpoint: ("best",),
}


def _state_attrs(callback):
    for cls, attrs in _CALLBACK_STATE.items():
        if isinstance(callback, cls):
            return attrs
    return ()


def _plain(value):
    return value.item() if hasattr(value, "item") else value


def epoch_seed(seed: int, epoch: int, salt: str = "") -> int:
    """A 31-bit seed that depends only on (seed, epoch, salt)."""
    digest = hashlib.sha256(f"{seed}:{epoch}:{salt}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


class EpochSeeding(keras.callbacks.Callback):
    """Resets every `SeedGenerator` of the model at the start of each epoch.

    Dropout masks and SSE draws (eq. 9-10) of epoch `e` then depend only on
    (seed, e), not on how many steps ran before a restart.
    """

    def __init__(self, seed: int):
        super().__init__()
        self.seed = seed

    def on_epoch_begin(self, epoch, logs=None):
        for index, layer in enumerate(self.model._flatten_layers()):
            for generator in getattr(layer, "_seed_generators", ()):
                value = epoch_seed(self.seed, epoch, str(index))
                generator.state.assign(
                    keras.ops.convert_to_tensor(
                        [value, 0], dtype=generator.state.dtype
                    )
                )


@dataclasses.dataclass
class TrainingState:
    """What `state.json` of a run's `checkpoint/` folder records."""

    completed_epochs: int = 0
    stopped_early: bool = False
    finished: bool = False
    weights_file: Optional[str] = None
    callbacks: Dict[str, Dict] = dataclasses.field(default_factory=dict)
    history: List[Dict] = dataclasses.field(default_factory=list)

    @classmethod
    def load(cls, checkpoint_dir, name=STATE_FILE) -> "TrainingState":
        path = Path(checkpoint_dir) / name
        if not path.exists():
            return cls()
        return cls(**json.loads(path.read_text()))

    def save(self, checkpoint_dir, name=STATE_FILE) -> None:
        path = Path(checkpoint_dir) / name
        tmp = path.with_name(name + ".tmp")
        tmp.write_text(json.dumps(dataclasses.asdict(self), indent=2))
        os.replace(tmp, path)

    def capture_callbacks(self, callbacks) -> None:
        self.callbacks = {
            type(cb).__name__: {a: _plain(getattr(cb, a)) for a in _state_attrs(cb)}
            for cb in callbacks
            if _state_attrs(cb)
        }


class RestoreCallbackState(keras.callbacks.Callback):
    """Puts saved callback state back after the callbacks' own resets.

    Keras callbacks reset themselves in `on_train_begin`; this callback must
    therefore come after them in the callback list.
    """

    def __init__(self, callbacks, state: TrainingState):
        super().__init__()
        self.callbacks = callbacks
        self.state = state

    def on_train_begin(self, logs=None):
        for cb in self.callbacks:
            saved = self.state.callbacks.get(type(cb).__name__)
            if saved:
                for attr, value in saved.items():
                    setattr(cb, attr, value)


def save_checkpoint(model, state: TrainingState, checkpoint_dir, barrier=None) -> None:
    """Writes weights (with optimizer state) then points `state.json` at them.

    With a `barrier` (several workers, each saving into its own folder) the
    state goes to `state.pending.json` first and is committed once every
    worker has passed the barrier, so after a kill the workers' states are at
    most one epoch apart and the later one is on every worker (`agree_on_epoch`).
    """
    checkpoint_dir = Path(checkpoint_dir)
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    name = f"epoch-{state.completed_epochs:04d}.weights.h5"
    model.save_weights(checkpoint_dir / name, overwrite=True)
    previous = state.weights_file
    state.weights_file = name
    if barrier is None:
        state.save(checkpoint_dir)
    else:
        state.save(checkpoint_dir, PENDING_FILE)
        barrier()
        os.replace(checkpoint_dir / PENDING_FILE, checkpoint_dir / STATE_FILE)
    if previous and previous != name:
        (checkpoint_dir / previous).unlink(missing_ok=True)


def agree_on_epoch(state: TrainingState, checkpoint_dir, gather) -> TrainingState:
    """The state all workers resume from: the latest committed epoch of any.

    `gather(values)` returns every worker's `values` (a collective step).
    A worker one epoch behind takes its pending state of that epoch, which
    the barrier of `save_checkpoint` guarantees it wrote.
    """
    checkpoint_dir = Path(checkpoint_dir)
    pending_path = checkpoint_dir / PENDING_FILE
    pending = TrainingState.load(checkpoint_dir, PENDING_FILE) if pending_path.exists() else None
    table = gather([state.completed_epochs, pending.completed_epochs if pending else -1])
    latest = int(max(row[0] for row in table))
    if state.completed_epochs == latest:
        pending_path.unlink(missing_ok=True)  # an epoch no worker committed
        return state
    if pending is not None and pending.completed_epochs == latest:
        os.replace(pending_path, checkpoint_dir / STATE_FILE)
        if state.weights_file and state.weights_file != pending.weights_file:
            (checkpoint_dir / state.weights_file).unlink(missing_ok=True)
        return pending
    raise ValueError(
        f"{checkpoint_dir} holds epoch {state.completed_epochs} but another worker "
        f"finished epoch {latest}: these workers' folders are not of one run "
        "(start every worker of a run with the same command and output folder).")


def restore_checkpoint(model, state: TrainingState, checkpoint_dir) -> None:
    """Loads the weights and optimizer state that `state` points at."""
    if not state.weights_file:
        return
    if not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    model.load_weights(Path(checkpoint_dir) / state.weights_file)
