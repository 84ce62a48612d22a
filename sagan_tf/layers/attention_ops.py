"""Softmax attention over positions: dense ops and a memory-bounded tiled op.

All compute `o = softmax(q k^T) v` with the softmax over keys taken in float32.
`dense_attention` also returns the map (autodiff gradient); `dense_output`
returns `o` only, with a hand-written gradient that passes over the (B, N, M)
map fewer times: the softmax term `sum_j dA_ij A_ij` equals `dO_i . O_i` (as in
FlashAttention's backward), a (B, N, c) product instead of a (B, N, M) one, and
no gradient is formed for the map itself beyond `dE`. The tiled op walks over
blocks of queries one at a time (forward and backward, the backward
recomputing each block's attention), so peak memory is `B * tile * M` instead
of `B * N * M`.
"""

import tensorflow as tf


def attention_map(q, k):
    """softmax_j(q_i . k_j) in float32: q (B, N, d), k (B, M, d) -> (B, N, M)."""
    return tf.nn.softmax(
        tf.cast(tf.matmul(q, k, transpose_b=True), tf.float32), axis=-1
    )


def dense_attention(q, k, v):
    """q (B, N, d), k (B, M, d), v (B, M, c) -> (o (B, N, c), attention (B, N, M))."""
    attention = attention_map(q, k)  # (B, N, M) float32
    o = tf.matmul(tf.cast(attention, v.dtype), v)  # (B, N, c)
    return o, attention


def _with_ones(v):
    return tf.concat([v, tf.ones_like(v[..., :1])], axis=-1)  # (B, M, c+1)


def _minus_row(do, v_one, row):
    """`dO V^T - row` (B, N, M) as one product, `v_one = _with_ones(V)`: the row term
    rides along as one more channel, `[dO, -row] . [V, 1]^T`, saving an elementwise
    pass over the map."""
    do_row = tf.concat([do, tf.cast(-row, do.dtype)], axis=-1)  # (B, N, c+1)
    return tf.matmul(do_row, v_one, transpose_b=True)  # (B, N, M)


@tf.custom_gradient
def dense_output(q, k, v):
    """Same output as `dense_attention(q, k, v)[0]`; its gradient makes 1 elementwise
    pass over the (B, N, M) map where autodiff makes 4."""
    o, attention = dense_attention(q, k, v)  # (B, N, c), (B, N, M) float32

    def grad(do):
        a = tf.cast(attention, v.dtype)
        dv = tf.matmul(a, do, transpose_a=True)  # (B, M, c)
        row = tf.reduce_sum(tf.cast(do, tf.float32) * tf.cast(o, tf.float32), axis=-1,
                            keepdims=True)  # (B, N, 1): sum_j dA_ij A_ij
        d_att = tf.cast(_minus_row(do, _with_ones(v), row), tf.float32)  # (B, N, M): dA_ij - row_i
        d_energy = tf.cast(attention * d_att, q.dtype)  # (B, N, M)
        dq = tf.matmul(d_energy, k)  # (B, N, d)
        dk = tf.matmul(d_energy, q, transpose_a=True)  # (B, M, d)
        return dq, dk, dv

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
    def forward(q_tile):
        attention = attention_map(q_tile, k)
        return tf.matmul(tf.cast(attention, v.dtype), v)  # (B, tile, c)

    o_tiles = tf.map_fn(
        forward,
        q_tiles,
        fn_output_signature=tf.TensorSpec([None, None, v.shape[-1]], v.dtype),
        parallel_iterations=1,
    )

    def grad(do_tiles):
        num_tiles = tf.shape(q_tiles)[0]
        v32 = tf.cast(v, tf.float32)
        v32_one = _with_ones(v32)  # built once, not per tile
        k32 = tf.cast(k, tf.float32)

        def body(i, dq_acc, dk, dv):
            q_tile = tf.cast(q_tiles[i], tf.float32)
            attention = attention_map(q_tiles[i], k)  # (B, tile, M)
            do = tf.cast(do_tiles[i], tf.float32)  # (B, tile, c)
            dv += tf.matmul(attention, do, transpose_a=True)  # (B, M, c)
            # sum_j dA_ij A_ij = dO_i . O_i: a (B, tile, c) product, not (B, tile, M).
            row = tf.reduce_sum(do * tf.cast(o_tiles[i], tf.float32), axis=-1, keepdims=True)
            d_energy = attention * _minus_row(do, v32_one, row)  # (B, tile, M)
            dq_acc = dq_acc.write(i, tf.matmul(d_energy, k32))  # (B, tile, d)
            dk += tf.matmul(d_energy, q_tile, transpose_a=True)  # (B, M, d)
            return i + 1, dq_acc, dk, dv

        _, dq_acc, dk, dv = tf.while_loop(
            lambda i, *_: i < num_tiles,
            body,
            (
                tf.constant(0),
                tf.TensorArray(tf.float32, size=num_tiles),
                tf.zeros_like(k32),
                tf.zeros_like(v32),
            ),
            parallel_iterations=1,
        )
        dq = dq_acc.stack()
        return (
            tf.cast(dq, q_tiles.dtype),
            tf.cast(dk, k.dtype),
            tf.cast(dv, v.dtype),
        )

    return o_tiles, grad
