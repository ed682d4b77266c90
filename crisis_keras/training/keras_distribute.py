"""What Keras 3 (3.15, TF backend) needs to `fit` our models under tf.distribute.

1. `fit` first builds the model from one batch, which `_maybe_symbolic_build`
   gets as `strategy.reduce("MEAN", batch)`: that fails on string inputs (the
   tweets) under any strategy and on any nested batch under
   MultiWorkerMirroredStrategy (keras-team/keras#20585), and it draws that
   batch from an iterator of its own, so that the epoch trains on the
   dataset's second iteration, another shuffle than without a strategy (and
   than after a resume). Shapes are all it needs: `adapt_model` gives it the
   dataset's element spec, and skips it once the model, its loss, metrics and
   optimizer are built.
2. Under MultiWorkerMirroredStrategy Keras reduces each step's logs with
   `strategy.reduce("MEAN", value, axis=0)`, which fails on scalars: the
   train and test steps return theirs as shape `[1]`, whose mean over the
   replicas is the scalar MirroredStrategy gives. The epoch logs that
   callbacks, history and metrics read are taken afterwards from the metric
   variables, summed over every replica, as without the fix.

Both are patches of one model instance (attributes), not of Keras.
"""

import types

import keras


def _built(model) -> bool:
    parts = [all(layer.built for layer in model._flatten_layers())]
    for part in (model._compile_metrics, model._compile_loss, model.optimizer):
        if part is not None:
            parts.append(part.built)
    return all(parts)


def _symbolic_build(self, iterator=None, data_batch=None):
    """`Trainer._maybe_symbolic_build` from the dataset's element spec."""
    if _built(self):
        return
    if iterator is not None:
        data_batch = iterator.data_adapter.get_tf_dataset().element_spec
    with self.distribute_strategy.scope():
        self._symbolic_build(data_batch=data_batch)


def _as_rows(step):
    def step_with_row_logs(data):
        logs = step(data)
        return {name: keras.ops.reshape(value, (1,)) for name, value in logs.items()}

    return step_with_row_logs


def adapt_model(model, strategy) -> None:
    """Patches `model` (built in `strategy.scope()`) for `fit` under `strategy`;
    nothing under the default strategy."""
    from crisis_keras.training.distribute import is_multi_worker

    if model._distribute_strategy is None:  # built outside any strategy's scope
        return
    model._maybe_symbolic_build = types.MethodType(_symbolic_build, model)
    if is_multi_worker(strategy):
        model.train_step = _as_rows(model.train_step)
        model.test_step = _as_rows(model.test_step)
