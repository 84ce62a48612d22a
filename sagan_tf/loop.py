"""The training loop: `SAGAN.train_step` under any `tf.distribute` strategy,
driving Keras callbacks.

`keras.Model.fit` runs the same `train_step` and callbacks on one machine, but
Keras 3's `fit` cannot run under `MultiWorkerMirroredStrategy` (its symbolic
build and its log reduction fail on per-replica values), so training runs this
loop everywhere: one `strategy.run` per step inside a `tf.function`, metrics
read in cross-replica context (their on-read variables sum over all replicas of
all workers), then the callbacks' batch hooks with plain-float logs.
"""

import keras
import tensorflow as tf


def make_step_function(gan, strategy, steps_per_execution=1):
    """A `tf.function(iterator[, n]) -> {metric name: global value}` making one training
    step (or, with `steps_per_execution` > 1, `n` steps in one call: a graph loop, one
    Python round trip for all of them) on every replica of `strategy`; the train step
    is XLA-compiled when `gan` was compiled with `jit_compile=True` (as `fit` would)."""
    train_step = gan.train_step
    if gan.jit_compile:
        train_step = tf.function(train_step, jit_compile=True)

    def metrics():
        # Cross-replica reads of the metrics' SUM on-read variables: global means.
        return {m.name: m.result() for m in gan.metrics}

    if steps_per_execution == 1:
        @tf.function
        def step(iterator):
            strategy.run(train_step, args=(next(iterator),))
            return metrics()

        return step

    @tf.function
    def steps(iterator, n):
        for _ in tf.range(n):
            strategy.run(train_step, args=(next(iterator),))
        return metrics()

    return steps


def _is_multi_worker(strategy):
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def make_stop_vote(strategy):
    """`vote(stop) -> bool`: whether any worker asks to stop. Every worker must
    leave the loop at the same step, or the others wait in the next step's
    collectives forever. Single-machine strategies need no vote."""
    if not _is_multi_worker(strategy):
        return bool

    @tf.function
    def count(stop):
        votes = strategy.run(lambda s: tf.cast(s, tf.float32), args=(stop,))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, votes, axis=None)

    return lambda stop: float(count(tf.constant(bool(stop)))) > 0


def train(gan, strategy, dataset, steps, callbacks=(), steps_per_execution=1):
    """Runs `steps` training steps of `gan` (compiled, built under `strategy`) on a
    distributed `dataset`, calling `callbacks` like `fit` does (train begin and end,
    batch begin and end with the step's logs; `gan.stop_training` ends the loop
    early). Metrics are reset at the start. Returns the last step's logs.

    With `steps_per_execution` = k > 1, one `tf.function` call runs up to k steps and
    the batch hooks run once per call, after it; calls end at multiples of k of the
    model's step (the first one is shorter when a run resumes elsewhere), so callbacks
    acting every multiple of k steps still act at exactly those steps."""
    k = int(steps_per_execution)
    if k < 1:
        raise ValueError(f"steps_per_execution must be >= 1; got {steps_per_execution}")
    callback_list = keras.callbacks.CallbackList(list(callbacks), model=gan)
    step = make_step_function(gan, strategy, k)
    any_worker_stops = make_stop_vote(strategy)
    iterator = iter(dataset)
    for metric in gan.metrics:
        metric.reset_state()
    gan.stop_training = False
    logs = {}
    callback_list.on_train_begin()
    batch = 0
    while batch < steps:
        callback_list.on_train_batch_begin(batch)
        if k == 1:
            n, values = 1, step(iterator)
        else:
            n = min(k - int(gan.step.numpy()) % k, steps - batch)
            values = step(iterator, tf.constant(n))
        logs = {name: float(value) for name, value in values.items()}
        batch += n
        callback_list.on_train_batch_end(batch - 1, logs)
        if any_worker_stops(gan.stop_training):
            break
    callback_list.on_train_end(logs)
    return logs
