import numpy as np
import pytest
import scipy.linalg

from sagan_tf import metrics


def _random_cov(rng, d):
    a = rng.normal(size=(d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


def test_frechet_distance_matches_scipy_sqrtm():
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    c1, c2 = _random_cov(rng, 6), _random_cov(rng, 6)
    covmean = scipy.linalg.sqrtm(c1 @ c2).real
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(c1 + c2 - 2 * covmean)
    np.testing.assert_allclose(metrics.frechet_distance(mu1, c1, mu2, c2), expected, rtol=1e-8)


def test_frechet_distance_closed_forms():
    # Shifted identity Gaussians: only the mean term remains.
    d = 5
    shift = np.arange(d, dtype=float)
    assert metrics.frechet_distance(np.zeros(d), np.eye(d), shift, np.eye(d)) == pytest.approx(30.0)
    # Commuting (diagonal) covariances: sum (sqrt(a) - sqrt(b))^2.
    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 16.0])
    expected = np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert metrics.frechet_distance(np.zeros(3), np.diag(a), np.zeros(3), np.diag(b)) == \
        pytest.approx(expected)
    # Singular covariances stay finite and non-negative (sqrtm of C1 C2 struggles there).
    low_rank = np.outer([1, 2, 3], [1, 2, 3]).astype(float)
    value = metrics.frechet_distance(np.zeros(3), low_rank, np.zeros(3), low_rank)
    assert np.isfinite(value) and 0 <= value < 1e-6 * np.trace(low_rank)


def test_streaming_stats_equal_batch_statistics_and_fid_of_samples():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4000, 4)) @ np.diag([1.0, 2.0, 0.5, 1.0]) + 3.0
    stats = metrics.FeatureStats(4, kid_max_samples=100)
    for chunk in np.array_split(x, 7):
        stats.update(chunk)
    np.testing.assert_allclose(stats.mean, x.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(stats.cov, np.cov(x, rowvar=False), rtol=1e-10)
    assert stats.kid_features.shape == (100, 4)
    # Identical sets: FID about 0. Shifted set: FID about |shift|^2.
    same = metrics.FeatureStats(4)
    same.update(x)
    assert abs(metrics.fid(stats, same)) < 1e-8
    shifted = metrics.FeatureStats(4)
    shifted.update(x + np.array([2.0, 0, 0, 0]))
    assert metrics.fid(stats, shifted) == pytest.approx(4.0, rel=1e-8)


def test_kid_is_unbiased_near_zero_on_equal_distributions():
    rng = np.random.default_rng(2)
    a = rng.normal(size=(2000, 8))
    b = rng.normal(size=(2000, 8))
    mean, std = metrics.kid(a, b, num_subsets=50, subset_size=500)
    assert abs(mean) < 3 * std / np.sqrt(50) + 1e-3
    far, _ = metrics.kid(a, b + 1.0, num_subsets=10, subset_size=500)
    assert far > 20 * abs(mean) and far > 0.1
    # Small hand case against the definition.
    x = np.array([[1.0, 0.0], [0.0, 1.0]])
    y = np.array([[1.0, 1.0], [0.0, 0.0]])
    k = lambda u, v: (u @ v / 2 + 1) ** 3  # noqa: E731
    expected = (2 * k(x[0], x[1])) / 2 + (2 * k(y[0], y[1])) / 2 - 2 * np.mean(
        [k(a_, b_) for a_ in x for b_ in y])
    assert metrics.kid(x, y, num_subsets=1, subset_size=2)[0] == pytest.approx(expected)


def test_inception_score_extremes_and_streaming():
    # Confident and uniform over 4 classes: IS = 4. Identical predictions: IS = 1.
    logits = np.tile(np.eye(4) * 50.0, (25, 1))
    score = metrics.InceptionScore(100, 4, splits=5)
    for chunk in np.array_split(logits, 3):
        score.update(chunk)
    assert score.result()[0] == pytest.approx(4.0, rel=1e-6)
    same = metrics.InceptionScore(100, 4, splits=5)
    same.update(np.tile([[3.0, 1.0, 0.0, 0.0]], (100, 1)))
    assert same.result() == pytest.approx((1.0, 0.0), abs=1e-9)
    # Against a direct computation on random logits.
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(60, 5)) * 2
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    direct = []
    for part in np.split(p, 3):
        py = part.mean(0)
        direct.append(np.exp(np.mean(np.sum(part * (np.log(part) - np.log(py)), 1))))
    stream = metrics.InceptionScore(60, 5, splits=3)
    stream.update(logits[:17])
    stream.update(logits[17:])
    assert stream.result()[0] == pytest.approx(np.mean(direct), rel=1e-9)


def test_bad_features():
    stats = metrics.FeatureStats(3)
    with pytest.raises(metrics.MetricError, match="expected 3"):
        stats.update(np.zeros((2, 4)))
    with pytest.raises(metrics.MetricError, match="NaN"):
        stats.update(np.full((2, 3), np.nan))


def test_precision_recall_extremes():
    rng = np.random.default_rng(2)
    a = rng.normal(size=(200, 8))
    assert metrics.precision_recall(a, a.copy(), k=3) == (1.0, 1.0)
    far = rng.normal(size=(150, 8)) + 100.0
    assert metrics.precision_recall(a, far, k=3) == (0.0, 0.0)
    # A collapsed G (all samples near one real point): precise, but covers almost nothing.
    collapsed = a[:1] + 1e-3 * rng.normal(size=(100, 8))
    precision, recall = metrics.precision_recall(a, collapsed, k=3)
    assert precision == 1.0 and recall < 0.05


def test_precision_recall_matches_a_direct_count():
    rng = np.random.default_rng(3)
    real, fake = rng.normal(size=(60, 3)), rng.normal(size=(50, 3)) + 0.5
    d_rr = np.linalg.norm(real[:, None] - real[None], axis=-1)
    d_ff = np.linalg.norm(fake[:, None] - fake[None], axis=-1)
    d_fr = np.linalg.norm(fake[:, None] - real[None], axis=-1)
    r_real = np.sort(d_rr, axis=1)[:, 3]
    r_fake = np.sort(d_ff, axis=1)[:, 3]
    precision = np.mean([(d_fr[i] <= r_real).any() for i in range(50)])
    recall = np.mean([(d_fr[:, j] <= r_fake).any() for j in range(60)])
    got = metrics.precision_recall(real, fake, k=3, batch_size=7)
    np.testing.assert_allclose(got, (precision, recall), atol=1e-12)


def test_precision_recall_needs_k_plus_one_samples_and_accuracy_needs_labels():
    with pytest.raises(metrics.MetricError, match="at least 4 samples per set; got 3 real"):
        metrics.precision_recall(np.zeros((3, 2)), np.zeros((10, 2)), k=3)
    logits = np.array([[0.0, 1.0], [2.0, 0.0], [0.0, 3.0]])
    assert metrics.class_accuracy(logits, [1, 0, 0]) == pytest.approx(2 / 3)
    with pytest.raises(metrics.MetricError, match="one label per sample"):
        metrics.class_accuracy(logits, [1, 0])


def test_mirror_gap_is_the_mean_distance_from_the_mirror_image_per_label():
    from sagan_tf.metrics import MirrorGap

    symmetric = np.tile(np.array([-1, 0.5, 0.5, -1], np.float32)[None, None, :, None],
                        (2, 3, 1, 3))                            # (2, 3, 4, 3), even rows
    ramp = np.tile(np.linspace(-1, 1, 4, dtype=np.float32)[None, None, :, None], (1, 3, 1, 3))
    gap = MirrorGap()
    gap.update(np.concatenate([symmetric, ramp]), labels=[0, 0, 1])
    # The ramp's mirror differs by |x - (-x)| = 2|x|: mean 2 * (1 + 1/3 + 1/3 + 1) / 4, over 2.
    assert gap.mean(0) == 0.0
    assert gap.mean(1) == pytest.approx((1 + 1 / 3 + 1 / 3 + 1) / 4)
    assert gap.mean() == pytest.approx(gap.mean(1) / 3)
    assert gap.mean(7) is None
