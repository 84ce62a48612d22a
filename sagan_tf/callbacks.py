"""Keras callbacks of a training run: NaN guard, checkpoints, summaries, progress."""

import json
import math
import signal
import threading
import time

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from sagan_tf import visualize
from sagan_tf.errors import UserError


SCALAR_DESCRIPTIONS = {
    "d_loss": "Discriminator loss per example, mean over the log period (last D update).",
    "g_loss": "Generator loss per example, mean over the log period.",
    "gp": "Gradient penalty (||grad D|| - 1)^2, mean over the log period.",
    "d_real": "Mean discriminator logit on real images (not a loss).",
    "d_fake": "Mean discriminator logit on generated images (not a loss).",
    "gamma": "Attention output scale gamma (y = gamma * o + x; 0 at the start).",
    "r_t": "Overfitting heuristic E[sign(D(real))] over the log period: near 1 when D "
           "separates every real image it sees (ADA holds it at --ada_target).",
    "lecam": "LeCam regularizer of D per example (before its weight), mean over the log period.",
    "augment/p": "ADA: probability of each augmentation (adapted from r_t).",
    "augment/r_t": "ADA: r_t of the last adjustment interval.",
    "lecam/ema_real": "LeCam: moving average of D's mean output on real images.",
    "lecam/ema_fake": "LeCam: moving average of D's mean output on generated images.",
}
DISCRIMINATOR_SCALARS = ("d_real", "d_fake", "r_t")


class NonFiniteLossError(UserError, RuntimeError):
    """Training produced a NaN or Inf loss (or weight)."""


class CheckpointWriteError(UserError, RuntimeError):
    """A checkpoint could not be written (disk full, read-only); reported as one line."""


class LogWriteError(UserError, RuntimeError):
    """TensorBoard logs could not be written (disk full, read-only); reported as one line."""


def flush(writer):
    """`writer.flush()`, a TensorFlow write error (a full disk) as one LogWriteError
    naming the log directory and the cause; the checkpoints are not touched."""
    try:
        writer.flush()
    except tf.errors.OpError as e:
        from sagan_tf.files import free_space, write_error_cause

        where = getattr(writer, "logdir", "the run's logs directory")
        raise LogWriteError(f"cannot write TensorBoard logs in {where}: {write_error_cause(e)} "
                            f"({free_space(str(where))}); training stopped, the last checkpoint "
                            "is kept as it was") from None


def _step(model):
    return int(model.step.numpy())


class NonFiniteGuard(keras.callbacks.Callback):
    """Stops training at the first NaN/Inf loss, before anything is saved."""

    def on_train_batch_end(self, batch, logs=None):
        for name, value in (logs or {}).items():
            if not math.isfinite(float(value)):
                raise NonFiniteLossError(
                    f"non-finite {name} ({float(value)}) at step {_step(self.model)}; "
                    "training stopped, the last checkpoint is kept as it was")


class CheckpointSaver(keras.callbacks.Callback):
    """Saves through a `tf.train.CheckpointManager` every `every` steps and at the end,
    after checking that every weight is finite."""

    def __init__(self, manager, every):
        super().__init__()
        self.manager = manager
        self.every = every

    def save(self):
        step = _step(self.model)
        if self.manager.latest_checkpoint and self.manager.latest_checkpoint.endswith(f"-{step}"):
            return
        weights = self.model.generator.weights + self.model.discriminator.weights
        if not all(np.isfinite(np.asarray(w)).all() for w in weights):
            raise NonFiniteLossError(f"non-finite weights at step {step}; training stopped, "
                                     "the last checkpoint is kept as it was")
        try:
            self.manager.save(checkpoint_number=step)
        except (OSError, tf.errors.OpError) as e:
            from sagan_tf.checkpoints import remove_partial_checkpoint
            from sagan_tf.files import free_space, write_error_cause

            remove_partial_checkpoint(self.manager.directory, step)
            raise CheckpointWriteError(
                f"cannot write checkpoint ckpt-{step} in {self.manager.directory}: "
                f"{write_error_cause(e)} ({free_space(self.manager.directory)}; "
                f"the checkpoint needs about {self.size_mb()} MiB); training stopped, the last "
                "checkpoint is kept as it was") from None

    def size_mb(self):
        weights = (self.model.generator.weights + self.model.discriminator.weights
                   + list(self.model.g_optimizer.variables) + list(self.model.d_optimizer.variables))
        if self.model.ema_generator is not None:
            weights += self.model.ema_generator.weights
        return max(1, sum(int(np.prod(w.shape)) * 4 for w in weights) // 2**20)

    def on_train_batch_end(self, batch, logs=None):
        if _step(self.model) % self.every == 0:
            self.save()

    def on_train_end(self, logs=None):
        self.save()


# Longest wall time between two progress lines, whatever the step cadence.
HEARTBEAT_SECONDS = 60


class TrainingMonitor(keras.callbacks.Callback):
    """Terminal progress and TensorBoard summaries.

    Every `log_every` steps: losses, mean D(real) and D(fake), each attention
    layer's gamma, learning rates and images/s to TensorBoard, and a progress
    line (step, losses, images/s, ETA) to the log. Every `sample_every` steps: a
    sample grid from a fixed z (the EMA generator when there is one; one row per
    class for conditional models) as a PNG under `samples_dir` and in
    TensorBoard, plus attention maps of G's layers on samples and of D's layers
    on real images. With `samples_dir=None` (a worker other than the chief) no
    samples are made; metrics are still reset each period, as on every worker.
    """

    def __init__(self, writer, total_steps, global_batch, log_every, sample_every,
                 samples_dir, fixed_z, fixed_labels, real_images, real_labels):
        super().__init__()
        self.writer = writer
        self.total_steps = total_steps
        self.global_batch = global_batch
        self.log_every = log_every
        self.sample_every = sample_every
        self.samples_dir = samples_dir
        self.fixed_z = fixed_z
        self.fixed_labels = fixed_labels
        self.real_images = real_images
        self.real_labels = real_labels
        self._t0 = None
        self._s0 = None
        self.images_per_second = None  # of the last log period
        self.steps_run = 0
        self.train_seconds = 0.0  # from the start to the last step's end, compilation included
        self._first_call = None  # (steps_run, train_seconds) at the end of the compiled call

    @property
    def steady_images_per_second(self):
        """Images per second from the end of the first (compiling) call to the last
        step; None until a step has run after it."""
        if self._first_call is None or self.steps_run <= self._first_call[0]:
            return None
        steps, seconds = self._first_call
        return ((self.steps_run - steps) * self.global_batch
                / max(self.train_seconds - seconds, 1e-9))

    def _position(self, step):
        return f"step {step}/{self.total_steps} ({100 * step // self.total_steps}%)"

    def _eta(self, step, images_per_second):
        seconds = (self.total_steps - step) * self.global_batch / images_per_second
        return f"eta {int(seconds // 60)}m{int(seconds % 60):02d}s"

    def on_train_begin(self, logs=None):
        self._t0, self._s0 = time.time(), _step(self.model)
        self._begin, self._start_step, self._calls = self._t0, self._s0, 0
        self._last_line = self._t0

    def _heartbeat(self, step):
        """A short line when `log_every` steps take longer than HEARTBEAT_SECONDS: the
        step, the speed and the time left (no losses: the period's means and the
        TensorBoard scalars stay at the `log_every` cadence)."""
        speed = (step - self._s0) * self.global_batch / max(time.time() - self._t0, 1e-9)
        parts = [self._position(step)]
        if step > self._s0:
            parts += [f"{speed:.1f} img/s", self._eta(step, speed)]
        parts.append(f"losses every {self.log_every} steps")
        logging.info("%s", " | ".join(parts))
        self._last_line = time.time()

    def on_train_batch_end(self, batch, logs=None):
        step = _step(self.model)
        self.steps_run = step - self._start_step  # a call may run several steps
        self._calls += 1
        self.train_seconds = time.time() - self._begin
        if self._calls == 1:
            logging.info("step %d: the first step compiled and ran in %.1f s; a progress line "
                         "follows every %d steps", step, self.train_seconds, self.log_every)
            self._t0, self._s0 = time.time(), step  # periods' speeds exclude compilation
            self._first_call = (self.steps_run, self.train_seconds)
            self._last_line = self._t0
        if step % self.log_every == 0 or step == self.total_steps:
            self._log(step, logs or {})
        elif self._calls > 1 and time.time() - self._last_line >= HEARTBEAT_SECONDS:
            self._heartbeat(step)
        if self.samples_dir and (step % self.sample_every == 0 or step == self.total_steps):
            self.write_samples(step)

    def _log(self, step, logs):
        now = time.time()
        done = step - self._s0
        if done > 0:
            self.images_per_second = done * self.global_batch / (now - self._t0)
        model = self.model
        with self.writer.as_default(step=step):
            for name, value in logs.items():
                group = "discriminator" if name in DISCRIMINATOR_SCALARS else "losses"
                tf.summary.scalar(f"{group}/{name}", float(value),
                                  description=SCALAR_DESCRIPTIONS.get(name))
            for name, variable in model.regularizer_state.items():
                if name in SCALAR_DESCRIPTIONS:  # not the accumulators
                    tf.summary.scalar(name, float(variable.numpy()),
                                      description=SCALAR_DESCRIPTIONS[name])
            for prefix, net in (("G", model.generator), ("D", model.discriminator)):
                for layer in net.attention_layers:
                    tf.summary.scalar(f"gamma/{prefix}_{layer.name}", layer.gamma.value,
                                      description=SCALAR_DESCRIPTIONS["gamma"])
            tf.summary.scalar("learning_rate/G", float(np.asarray(model.g_optimizer.learning_rate)))
            tf.summary.scalar("learning_rate/D", float(np.asarray(model.d_optimizer.learning_rate)))
            if self.images_per_second:
                tf.summary.scalar("speed/images_per_second", self.images_per_second,
                                  description="Training images per second over the log period.")
        flush(self.writer)
        logging.info("%s", self.progress_line(step, logs))
        self._last_line = time.time()
        for metric in model.metrics:  # per-period means
            metric.reset_state()
        self._t0, self._s0 = now, step

    def progress_line(self, step, logs):
        """`step 500/3000 (17%) | d_loss 0.707 g_loss 1.128 | D(real) 1.02 D(fake) -1.00 |
        340 img/s | eta 1m34s`."""
        parts = [self._position(step)]
        losses = [f"{k} {float(v):.3f}" for k, v in logs.items() if k not in DISCRIMINATOR_SCALARS]
        parts.append(" ".join(losses))
        if "d_real" in logs:
            d = f"D(real) {float(logs['d_real']):.2f} D(fake) {float(logs['d_fake']):.2f}"
            if "r_t" in logs:
                d += f" r_t {float(logs['r_t']):.2f}"
            if "augment/p" in self.model.regularizer_state:
                d += f" p {float(self.model.regularizer_state['augment/p'].numpy()):.3f}"
            parts.append(d)
        if self.images_per_second:
            parts += [f"{self.images_per_second:.0f} img/s", self._eta(step, self.images_per_second)]
        return " | ".join(parts)

    def write_samples(self, step):
        model = self.model
        images = model.sampler(self.fixed_z, self.fixed_labels, training=False)
        # 8 per row: unconditional 8x8, conditional one row per class (at most 10 classes).
        grid = visualize.make_grid(np.asarray(images), columns=8)
        visualize.write_png(f"{self.samples_dir}/step_{step:07d}.png", grid)
        with self.writer.as_default(step=step):
            tf.summary.image("samples", grid[None], step=step)
            labels4 = None if self.fixed_labels is None else self.fixed_labels[:4]
            _, g_maps = model.sampler(self.fixed_z[:4], labels4, training=False,
                                      return_attention=True)
            for layer, amap in zip(model.sampler.attention_layers, g_maps):
                panels = visualize.attention_panels(images[:4], amap)
                tf.summary.image(f"attention/G_{layer.name}",
                                 visualize.make_grid(panels, columns=len(panels) // 4)[None])
            if self.real_images is not None and model.discriminator.attention_layers:
                _, d_maps = model.discriminator(self.real_images, self.real_labels,
                                                training=False, return_attention=True)
                for layer, amap in zip(model.discriminator.attention_layers, d_maps):
                    panels = visualize.attention_panels(self.real_images, amap)
                    tf.summary.image(f"attention/D_{layer.name}",
                                     visualize.make_grid(panels, columns=len(panels) // 4)[None])
        flush(self.writer)


EVAL_DESCRIPTIONS = {
    "fid": "Frechet distance of generated to real features (lower is better).",
    "kid": "Kernel inception distance, unbiased MMD^2 (lower is better).",
    "is": "Inception score of the backbone's logits (higher is better).",
    "precision": "Share of samples inside the real features' k-NN manifold (quality, k=3).",
    "recall": "Share of real images inside the samples' k-NN manifold (coverage, k=3).",
    "class_accuracy": "Share of samples of label y that the classifier reads as y.",
}


def format_result(result):
    """`fid 12.3 kid 0.0040 is 8.91 precision 0.81 recall 0.62 class_accuracy 0.95 (real
    0.97)`: the classifier's accuracy on held-out real images in brackets."""
    parts = [f"fid {result['fid']:.2f}", f"kid {result['kid']:.4f}", f"is {result['is']:.2f}",
             f"precision {result['precision']:.3f}", f"recall {result['recall']:.3f}"]
    if result.get("class_accuracy") is not None:
        parts.append(f"class_accuracy {result['class_accuracy']:.3f}")
        if result.get("real_class_accuracy") is not None:
            parts.append(f"(real {result['real_class_accuracy']:.3f})")
    return " ".join(parts)


class PeriodicEvaluation(keras.callbacks.Callback):
    """Every `every` steps and at the end of training: FID, KID, IS, precision,
    recall and class accuracy of the sampling generator against real statistics
    (computed once), logged to TensorBoard under `eval/`; `history` holds
    (step, result) pairs; the best checkpoint by FID is kept by `best_manager`
    (with `best.json` beside it)."""

    def __init__(self, writer, every, backbone, real_stats, num_samples, best_manager, seed=0,
                 should_stop=None):
        super().__init__()
        self.should_stop = should_stop  # polled between batches: a stop signal abandons
        self.writer = writer
        self.every = every
        self.backbone = backbone
        self.real_stats = real_stats
        self.num_samples = num_samples
        self.best_manager = best_manager
        self.seed = seed
        self.best_fid = float("inf")
        self.history = []

    def on_train_batch_end(self, batch, logs=None):
        step = _step(self.model)
        if step % self.every == 0:
            self.evaluate(step)

    def on_train_end(self, logs=None):
        step = _step(self.model)
        if getattr(self.model, "stop_signal", None) is not None:
            return  # stopped by a signal: save and go, no final evaluation
        if not self.history or self.history[-1][0] != step:
            self.evaluate(step)  # the final model is always evaluated

    def evaluate(self, step):
        from sagan_tf import evaluation

        logging.info("step %d: evaluating %d samples (%s)", step, self.num_samples,
                     self.backbone.name)
        try:
            result = evaluation.evaluate(
                evaluation.generator_sampler(self.model.sampler, self.seed), self.backbone,
                self.real_stats, self.num_samples, kid_subsets=evaluation.TRAINING_KID_SUBSETS,
                kid_subset_size=min(evaluation.TRAINING_KID_SUBSET_SIZE, self.num_samples),
                should_stop=self.should_stop)
        except evaluation.Abandoned as e:
            logging.warning("step %d: evaluation %s (stop signal)", step, e)
            return
        self.history.append((step, result))
        name = self.backbone.name
        with self.writer.as_default(step=step):
            for key in ("fid", "kid", "is", "precision", "recall", "class_accuracy"):
                if result[key] is not None:
                    tf.summary.scalar(f"eval/{key}_{name}", result[key],
                                      description=EVAL_DESCRIPTIONS[key])
        flush(self.writer)
        logging.info("step %d eval (%s, %d samples): %s", step, name, result["num_fake"],
                     format_result(result))
        if result["fid"] < self.best_fid:
            self.best_fid = result["fid"]
            self.best_manager.save(checkpoint_number=step)
            with open(f"{self.best_manager.directory}/best.json", "w") as f:
                json.dump({"step": step, **result}, f, indent=1)


class SignalStop(keras.callbacks.Callback):
    """Stops training cleanly on SIGTERM (how schedulers and preemptible machines stop
    jobs) or SIGINT (Ctrl-C): the step running when the signal comes finishes, the
    loop stops (all workers at the same step, through the loop's stop vote), and
    `CheckpointSaver` saves that step at the end. The signal is recorded as the
    model's `stop_signal`. While installed, a second signal only repeats the
    warning, so it cannot interrupt the save.

    `tf.distribute.experimental.PreemptionCheckpointHandler` covers SIGTERM for
    multi-worker jobs by saving and exiting the process itself; it does not handle
    SIGINT nor leave the final evaluation, TensorBoard and the lock to the run, so
    the run handles both signals here, with the loop's vote.

    Call `install()` before training and `uninstall()` after the export (the
    handlers can only be set from the main thread; elsewhere nothing is installed).
    The final evaluation and the export poll `requested()` and are abandoned when
    it is true. `action` is what the first signal's warning says will happen.
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self, action="stopping after this step and writing a checkpoint"):
        super().__init__()
        self.received = None
        self.action = action
        self._previous = {}

    def requested(self):
        return self.received is not None

    def install(self):
        if self._previous:
            return  # installed already
        if threading.current_thread() is threading.main_thread():
            for signum in self.SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)

    def ignore_further(self):
        """For a process that exits after a stop: later stop signals are ignored. Its
        teardown takes a moment, and Python restores the default handlers at its end,
        so a repeated signal would otherwise kill it with another status."""
        for signum in self.SIGNALS:
            signal.signal(signum, signal.SIG_IGN)
        self._previous.clear()

    def uninstall(self):
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def _handle(self, signum, frame):
        name = signal.Signals(signum).name
        if self.received is None:
            self.received = signum
            logging.warning("%s: %s", name, self.action)
        else:
            logging.warning("%s: already stopping", name)

    def _check(self):
        if self.received is not None:
            self.model.stop_training = True
            self.model.stop_signal = self.received

    def on_train_begin(self, logs=None):
        self._check()

    def on_train_batch_end(self, batch, logs=None):
        self._check()

    def on_train_end(self, logs=None):
        self._check()  # a signal during the last step: no final evaluation


class TimeLimit(keras.callbacks.Callback):
    """Stops training (cleanly, with a final checkpoint) after `minutes` of training time."""

    def __init__(self, minutes):
        super().__init__()
        self.seconds = minutes * 60

    def on_train_begin(self, logs=None):
        self.start = time.time()

    def on_train_batch_end(self, batch, logs=None):
        if time.time() - self.start >= self.seconds:
            self.model.stop_training = True
