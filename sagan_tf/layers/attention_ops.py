"""Softmax attention over positions: dense ops and a memory-bounded tiled op.

All compute `o = softmax(q k^T) v`, the softmax over keys. In float32 everything
is float32. Under mixed precision (bfloat16 or float16 q, k, v) the whole map
is in the compute dtype: the energies come out of the product in it, the
softmax runs on them (its kernels take the max and the sum in float32) and the
probabilities stay in it, so the forward, the `A v` product and the backward
read and write the (B, N, M) map at half the bytes, with no float32 copy, and
the matrix products run in the compute dtype (oneDNN accumulates them in
float32). The energies are already rounded to the compute dtype by their
product, so a float32 softmax on them would buy nothing measurable: the output
error against float64 is the same either way.

`dense_attention` also returns the map, in float32 (autodiff gradient; used
to draw attention maps). `dense_output` returns `o` only, with a hand-written
gradient that passes over the map fewer times: the softmax term
`sum_j dA_ij A_ij` equals `dO_i . O_i` (as in FlashAttention's backward), a
(B, N, c) product instead of a (B, N, M) one, and the row term rides along the
`dO V^T` product as one more channel (two in a 16-bit dtype). The tiled op walks over blocks of
queries one at a time (forward and backward, the backward recomputing each
block's probabilities), so peak memory is `B * tile * M` instead of
`B * N * M`.
"""

import tensorflow as tf


def attention_map(q, k):
    """softmax_j(q_i . k_j) in float32: q (B, N, d), k (B, M, d) -> (B, N, M)."""
    return tf.nn.softmax(
        tf.cast(tf.matmul(q, k, transpose_b=True), tf.float32), axis=-1
    )


def probabilities(q, k):
    """softmax_j(q_i . k_j) in q's dtype, energies to probabilities: (B, N, M). In
    float32 the same ops as `attention_map`."""
    return tf.nn.softmax(tf.matmul(q, k, transpose_b=True), axis=-1)


def dense_attention(q, k, v):
    """q (B, N, d), k (B, M, d), v (B, M, c) -> (o (B, N, c), attention (B, N, M) float32)."""
    attention = attention_map(q, k)  # (B, N, M) float32
    o = tf.matmul(tf.cast(attention, v.dtype), v)  # (B, N, c)
    return o, attention


def _row_parts(dtype):
    """Channels the row term takes: one in float32; two in a 16-bit dtype, the row split
    into its rounding and the rounding's remainder, so that `dA - row` is formed from a
    row good to about 2^-16 before the product rounds the difference (a row rounded to
    8 bits would dominate `dA - row` where the two nearly cancel)."""
    return 1 if dtype == tf.float32 else 2


def _with_ones(v):
    ones = tf.ones_like(v[..., :1])
    return tf.concat([v] + [ones] * _row_parts(v.dtype), axis=-1)  # (B, M, c+1) or (B, M, c+2)


def _dq_keys(k):
    """The keys `dq` is formed with: `k`, centred per image in a 16-bit dtype. Each row
    of the exact dE sums to 0, so dq is the same for keys shifted by any constant;
    rounded probabilities leave dE's rows a small sum, which centred keys keep from
    reaching dq (max-pooled keys have a large mean)."""
    if k.dtype == tf.float32:
        return k
    return k - tf.reduce_mean(k, axis=1, keepdims=True)  # (B, M, d)


def _backward(q, k_dq, v_one, a, o, do):
    """dq, dk, dv of `o = a v`, `a = softmax(q k^T)`, all in the compute dtype but `row`.

    `k_dq = _dq_keys(k)`, `v_one = _with_ones(v)` (built once per call). `dA - row`
    is one product, `[dO, -row] . [V, 1]^T`, so the map gets one elementwise pass,
    `a * (dA - row)`; the products accumulate in float32.
    """
    dv = tf.matmul(a, do, transpose_a=True)  # (B, M, c)
    # sum_j dA_ij A_ij = dO_i . O_i: a (B, N, c) product, not (B, N, M); float32.
    row = tf.reduce_sum(tf.cast(do, tf.float32) * tf.cast(o, tf.float32), axis=-1,
                        keepdims=True)  # (B, N, 1)
    if _row_parts(do.dtype) == 1:
        parts = [-row]
    else:
        high = tf.cast(row, do.dtype)
        parts = [-high, tf.cast(tf.cast(high, tf.float32) - row, do.dtype)]
    do_row = tf.concat([do] + parts, axis=-1)  # (B, N, c+1) or (B, N, c+2)
    d_energy = a * tf.matmul(do_row, v_one, transpose_b=True)  # (B, N, M)
    dq = tf.matmul(d_energy, k_dq)  # (B, N, d)
    dk = tf.matmul(d_energy, q, transpose_a=True)  # (B, M, d)
    return dq, dk, dv


@tf.custom_gradient
def dense_output(q, k, v):
    """Same output as `dense_attention(q, k, v)[0]`; its gradient makes 1 elementwise
    pass over the (B, N, M) map where autodiff makes 4."""
    a = probabilities(q, k)  # (B, N, M) in the compute dtype
    o = tf.matmul(a, v)  # (B, N, c)

    def grad(do):
        return _backward(q, _dq_keys(k), _with_ones(v), a, o, do)

    return o, grad


def tiled_attention(q, k, v, tile_size):
    """Same output as `dense_attention(q, k, v)[0]`, without the (B, N, M) map."""
    n = tf.shape(q)[1]
    num_tiles = (n + tile_size - 1) // tile_size
    pad = num_tiles * tile_size - n
    q_pad = tf.pad(q, [[0, 0], [0, pad], [0, 0]])
    # (T, B, tile, d): one block of queries per loop step.
    q_tiles = tf.transpose(
        tf.reshape(q_pad, [tf.shape(q)[0], num_tiles, tile_size, q.shape[-1]]),
        [1, 0, 2, 3],
    )
    o_tiles = _tiled_attention_core(q_tiles, k, v)  # (T, B, tile, c)
    o = tf.reshape(tf.transpose(o_tiles, [1, 0, 2, 3]), [tf.shape(q)[0], -1, v.shape[-1]])
    return o[:, :n]


@tf.custom_gradient
def _tiled_attention_core(q_tiles, k, v):
    o_tiles = tf.map_fn(
        lambda q_tile: tf.matmul(probabilities(q_tile, k), v),  # (B, tile, c)
        q_tiles,
        fn_output_signature=tf.TensorSpec([None, None, v.shape[-1]], v.dtype),
        parallel_iterations=1,
    )

    def grad(do_tiles):
        num_tiles = tf.shape(q_tiles)[0]
        k_dq, v_one = _dq_keys(k), _with_ones(v)  # built once, not per tile

        def body(i, dq_acc, dk, dv):
            q_tile = q_tiles[i]
            a = probabilities(q_tile, k)  # (B, tile, M), recomputed
            dq, dk_tile, dv_tile = _backward(q_tile, k_dq, v_one, a, o_tiles[i], do_tiles[i])
            # dk and dv summed over tiles in float32.
            return (i + 1, dq_acc.write(i, dq), dk + tf.cast(dk_tile, tf.float32),
                    dv + tf.cast(dv_tile, tf.float32))

        _, dq_acc, dk, dv = tf.while_loop(
            lambda i, *_: i < num_tiles,
            body,
            (
                tf.constant(0),
                tf.TensorArray(q_tiles.dtype, size=num_tiles),
                tf.zeros(tf.shape(k), tf.float32),
                tf.zeros(tf.shape(v), tf.float32),
            ),
            parallel_iterations=1,
        )
        return dq_acc.stack(), tf.cast(dk, k.dtype), tf.cast(dv, v.dtype)

    return o_tiles, grad
