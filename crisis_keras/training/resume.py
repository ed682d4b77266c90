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
    def load(cls, checkpoint_dir) -> "TrainingState":
        path = Path(checkpoint_dir) / "state.json"
        if not path.exists():
            return cls()
        return cls(**json.loads(path.read_text()))

    def save(self, checkpoint_dir) -> None:
        path = Path(checkpoint_dir) / "state.json"
        tmp = path.with_name("state.json.tmp")
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


def save_checkpoint(model, state: TrainingState, checkpoint_dir) -> None:
    """Writes weights (with optimizer state) then points `state.json` at them."""
    checkpoint_dir = Path(checkpoint_dir)
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    name = f"epoch-{state.completed_epochs:04d}.weights.h5"
    model.save_weights(checkpoint_dir / name, overwrite=True)
    previous = state.weights_file
    state.weights_file = name
    state.save(checkpoint_dir)
    if previous and previous != name:
        (checkpoint_dir / previous).unlink(missing_ok=True)


def restore_checkpoint(model, state: TrainingState, checkpoint_dir) -> None:
    """Loads the weights and optimizer state that `state` points at."""
    if not state.weights_file:
        return
    if not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    model.load_weights(Path(checkpoint_dir) / state.weights_file)
