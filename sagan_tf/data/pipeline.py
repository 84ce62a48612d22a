"""The input pipeline over any source: subsets, stateless per-epoch shuffling,
batching, prefetching and distribution over replicas."""

import dataclasses

import numpy as np
import tensorflow as tf

from sagan_tf.data import folders, mnist5k, tfds_source
from sagan_tf.data.spec import SUBSET_SEED, DataError, check_subset, to_model_range

def _source(spec, input_context=None):
    """(source, prepare, info). `source` is a tuple of arrays (random access: mnist5k
    and folders) or a `tf.data.Dataset` already sharded for `input_context` (TFDS)."""
    if spec.dataset == "mnist5k":
        return _subset(spec, *mnist5k.source(spec))
    if spec.dataset.startswith("folder:"):
        return _subset(spec, *folders.source(spec))
    return tfds_source.source(spec, input_context)  # TFDS shards by input_context itself (and subsets)


def _subset(spec, arrays, prepare, info):
    """`spec.subset` rows of a random-access source, drawn with `SUBSET_SEED`."""
    if spec.subset is None:
        return arrays, prepare, info
    check_subset(spec, info.num_examples)
    rows = np.sort(np.random.default_rng(SUBSET_SEED).permutation(info.num_examples)[:spec.subset])
    return (tuple(a[rows] for a in arrays), prepare, dataclasses.replace(
        info, num_examples=spec.subset,
        description=f"{info.description}, a subset of {spec.subset} images"))


def load_images(spec):
    """(images uint8 (N, S, S, C), labels int32 (N,), DataInfo) of all of mnist5k's or
    a folder's split, decoded as training decodes them, in file order."""
    arrays, prepare, info = _source(spec)
    if isinstance(arrays, tf.data.Dataset):
        raise DataError(f"{spec.dataset} is streamed; only mnist5k and folders load whole")
    ds = tf.data.Dataset.from_tensor_slices(arrays).map(
        lambda *element: prepare(*element), num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True).batch(256)
    images, labels = [], []
    for x, y in ds:
        images.append(tf.cast(tf.round(x), tf.uint8).numpy())
        labels.append(y.numpy())
    return np.concatenate(images), np.concatenate(labels).astype(np.int32), info


def describe(spec):
    """`DataInfo` (classes, size, description) of a spec, without building a pipeline."""
    return _source(spec)[2]


def stream_indices(num_examples, seed, global_batch, start_batch=0, pipeline=0, pipelines=1):
    """Example indices read by one input pipeline, as a dataset of int64.

    The global stream visits a fresh permutation of the examples each epoch
    (`tf.random.experimental.index_shuffle` seeded by `(seed, epoch)`), and
    global batch `b` is stream positions `[b * global_batch, (b + 1) * global_batch)`.
    Pipeline `p` of `pipelines` takes the `p`-th slice of every global batch,
    starting at global batch `start_batch`. So the data of a step depends only on
    the step: a resumed run reads what an uninterrupted one would, and any
    number of replicas or workers reads the same global batches.
    """
    share = global_batch // pipelines

    def index(j):
        position = (start_batch + j // share) * global_batch + pipeline * share + j % share
        return _permuted(position, num_examples, seed)

    return tf.data.Dataset.range(2**62).map(index)


def _permuted(position, num_examples, seed):
    """The example at int64 `position` of the stream: epoch `position // n` is the
    permutation of the n examples seeded by `(seed, epoch)`."""
    n = tf.constant(num_examples, tf.int64)
    seed_pair = tf.stack([tf.constant(seed, tf.int64), position // n])
    return tf.random.experimental.index_shuffle(position % n, seed_pair, n - 1)


def input_fn(spec, batch_size, input_context=None, repeat=True, start_batch=0):
    """A batched `tf.data.Dataset` of (images (B, S, S, C) in [-1, 1], labels (B,)).

    `batch_size` is the global batch; with an `input_context` each pipeline
    gets its per-replica share. `start_batch` skips that many global batches:
    exactly for mnist5k and folders (see `stream_indices`); TFDS datasets,
    which are streamed through a shuffle buffer, are reshuffled with seed
    `seed + start_batch` instead. Without `repeat`, one pass in a seeded order,
    its last batch shorter when the batch size does not divide the split.
    """
    pipelines = input_context.num_input_pipelines if input_context else 1
    pipeline = input_context.input_pipeline_id if input_context else 0
    global_batch = batch_size
    if input_context is not None:
        batch_size = input_context.get_per_replica_batch_size(global_batch)
    source, prepare, info = _source(spec, input_context)
    if isinstance(source, tf.data.Dataset):
        ds = _streamed(source, prepare, spec, info, repeat, start_batch)
    else:
        n = len(source[0])
        if repeat:
            if global_batch > n:
                raise DataError(f"{spec.dataset} has {n} examples, fewer than one batch "
                                f"({global_batch})")
            indices = stream_indices(n, spec.seed, global_batch, start_batch, pipeline, pipelines)
        else:
            # One pass: epoch 0 of the stream.
            indices = tf.data.Dataset.range(n).shard(pipelines, pipeline).map(
                lambda i: _permuted(i, n, spec.seed))
        tensors = tuple(tf.constant(a) for a in source)
        # Order-preserving maps: the element order is the resume and replica contract.
        ds = indices.map(lambda i: prepare(*(tf.gather(t, i) for t in tensors)),
                         num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.map(lambda image, label: (to_model_range(image), label),
                num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.batch(batch_size, drop_remainder=repeat)  # one pass: every image, the last batch short
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    return ds.with_options(options).prefetch(tf.data.AUTOTUNE)


def _streamed(ds, prepare, spec, info, repeat, start_batch):
    """A streamed source: decode, cache (uint8, when it fits), shuffle, repeat."""
    ds = ds.map(lambda *e: prepare(*e), num_parallel_calls=tf.data.AUTOTUNE,
                deterministic=spec.deterministic)
    ds = ds.map(lambda image, label: (tf.cast(tf.round(image), tf.uint8), label))
    item_bytes = spec.image_size**2 * spec.channels
    if info.num_examples and info.num_examples * item_bytes <= spec.cache_limit_mb * 2**20:
        ds = ds.cache()
    ds = ds.shuffle(spec.shuffle_buffer, seed=spec.seed + start_batch,
                    reshuffle_each_iteration=True)
    return ds.repeat() if repeat else ds


def check_batch_size(batch_size, num_replicas):
    if batch_size < 1 or batch_size % num_replicas:
        raise DataError(f"batch size {batch_size} must be a positive multiple of the number of "
                        f"replicas ({num_replicas})")


def distributed_dataset(strategy, spec, batch_size, repeat=True, start_batch=0):
    """Per-replica batches of `batch_size // num_replicas` for `strategy`, from
    global batch `start_batch` on (see `input_fn`)."""
    check_batch_size(batch_size, strategy.num_replicas_in_sync)
    return strategy.distribute_datasets_from_function(
        lambda ctx: input_fn(spec, batch_size, ctx, repeat=repeat, start_batch=start_batch))
