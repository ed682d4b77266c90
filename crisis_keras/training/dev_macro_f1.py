"""Dev macro F1 at each epoch end, for model selection by macro F1.

The paper keeps the model of lowest dev loss (section 4.5) but compares models
by macro F1 (section 4.4), which the rare classes move most. With
`TrainConfig.select_by = "macro_f1"` the trainer puts `DevMacroF1` first in
the callback list: it writes the epoch's dev macro F1 into
`logs["val_macro_f1"]`, where `ModelCheckpoint`, `ReduceLROnPlateau` and
`EarlyStopping` (all `mode="max"`), TensorBoard and `History` read it later in
the same `on_epoch_end`. Macro F1 is `evaluation.metrics.classification_metrics`'s,
so a kept model's `val_macro_f1` equals its dev macro F1 in metrics.json.
Improvement is strict (Keras' `mode="max"`): on a tie the earlier epoch's
model stays, and the tie counts as a flat epoch for LR reduction and early
stopping.

The callback keeps no state across epochs, so a resumed run needs nothing
restored for it (the callbacks it feeds are restored by `training.resume`).
"""

import keras
import numpy as np

from crisis_keras.evaluation.metrics import classification_metrics

VAL_MACRO_F1 = "val_macro_f1"


def dev_predictions(model, dataset):
    """(labels, predicted class ids) of `model` over `dataset`'s `(x, y)` batches."""
    labels, predicted = [], []
    for features, batch_labels in dataset:
        probabilities = keras.ops.convert_to_numpy(model.predict_on_batch(features))
        batch_labels = keras.ops.convert_to_numpy(batch_labels)
        # Under a tf.distribute strategy every replica predicts the whole batch
        # and Keras concatenates the copies: keep the first.
        predicted.append(np.argmax(probabilities[: len(batch_labels)], axis=-1))
        labels.append(batch_labels)
    return np.concatenate(labels), np.concatenate(predicted)


class DevMacroF1(keras.callbacks.Callback):
    """Adds `val_macro_f1`, the dev macro F1 (section 4.4), to each epoch's logs.

    Args:
        dataset: the dev batches `(features, labels)`, in evaluation mode.
        class_names: the task's classes, indexed by class id.
    """

    def __init__(self, dataset, class_names):
        super().__init__()
        self.dataset = dataset
        self.class_names = list(class_names)

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        labels, predicted = dev_predictions(self.model, self.dataset)
        metrics = classification_metrics(labels, predicted, self.class_names)
        logs[VAL_MACRO_F1] = metrics["macro_f1"]
