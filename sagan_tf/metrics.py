"""FID, KID and Inception Score, computed in streaming batches.

Statistics are accumulated batch by batch: FID keeps only the running sum and
sum of outer products of the features (d and d x d, float64), IS keeps per-split
sums, and KID keeps at most `kid_max_samples` features per set (a uniform
reservoir sample), so 50k samples never need all activations in memory.

References: Heusel et al. 2017 (FID, the TTUR code); Binkowski et al. 2018 (KID,
unbiased MMD^2 with the cubic polynomial kernel); Salimans et al. 2016 (IS).
"""

import numpy as np

from sagan_tf.errors import UserError


class MetricError(UserError, ValueError):
    """Inputs that make a metric meaningless."""


class FeatureStats:
    """Streaming mean and covariance of feature vectors, plus a KID reservoir."""

    def __init__(self, dim, kid_max_samples=10_000, seed=0):
        self.dim = dim
        self.mirror = MirrorGap()  # of the images whose features these are (evaluation fills it)
        self.n = 0
        self.sum = np.zeros(dim, np.float64)
        self.outer = np.zeros((dim, dim), np.float64)
        self.kid_max_samples = kid_max_samples
        self.reservoir = np.zeros((kid_max_samples, dim), np.float32)
        self._rng = np.random.default_rng(seed)

    def update(self, features):
        features = np.asarray(features, np.float64).reshape(len(features), -1)
        if features.shape[1] != self.dim:
            raise MetricError(f"features have {features.shape[1]} dims; expected {self.dim}")
        if not np.isfinite(features).all():
            raise MetricError("features contain NaN or Inf")
        for row in features:  # reservoir sampling (Algorithm R)
            if self.n < self.kid_max_samples:
                self.reservoir[self.n] = row
            else:
                j = self._rng.integers(0, self.n + 1)
                if j < self.kid_max_samples:
                    self.reservoir[j] = row
            self.n += 1
        self.sum += features.sum(axis=0)
        self.outer += features.T @ features

    @property
    def mean(self):
        return self.sum / self.n

    @property
    def cov(self):
        if self.n < 2:
            raise MetricError("a covariance needs at least 2 samples")
        mu = self.mean
        return (self.outer - self.n * np.outer(mu, mu)) / (self.n - 1)

    @property
    def kid_features(self):
        return self.reservoir[:min(self.n, self.kid_max_samples)]


class MirrorGap:
    """Streaming mean of each image's distance from its own mirror image, per label:
    mean |x - x mirrored left-right| over pixels and channels, over the [-1, 1] range's
    width (0: mirror-symmetric; faces are nearly so). A long-range structure that a
    generator must get right across the whole image, which FD need not see."""

    def __init__(self):
        self.sums, self.counts = {}, {}

    def update(self, images, labels=None):
        images = np.asarray(images, np.float64)
        gaps = np.abs(images - images[:, :, ::-1]).mean(axis=(1, 2, 3)) / 2.0  # (B,)
        labels = np.zeros(len(gaps), np.int64) if labels is None else np.asarray(labels)
        for label in np.unique(labels):
            chosen = gaps[labels == label]
            self.sums[int(label)] = self.sums.get(int(label), 0.0) + float(chosen.sum())
            self.counts[int(label)] = self.counts.get(int(label), 0) + len(chosen)

    def mean(self, label=None):
        """The mean gap over every image, or over those of `label` (None if none)."""
        keys = list(self.sums) if label is None else [label]
        n = sum(self.counts.get(k, 0) for k in keys)
        return sum(self.sums.get(k, 0.0) for k in keys) / n if n else None


def _sqrt_psd(matrix):
    """Symmetric square root of a symmetric positive semi-definite matrix."""
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def frechet_distance(mu1, cov1, mu2, cov2):
    """||mu1 - mu2||^2 + tr(C1 + C2 - 2 (C1 C2)^(1/2)).

    tr((C1 C2)^(1/2)) is computed as tr((S C2 S)^(1/2)) with S = C1^(1/2): the
    matrices are similar, and S C2 S is symmetric PSD, so eigh is stable where
    a general sqrtm of C1 C2 can return complex parts or NaN.
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    cov1, cov2 = np.asarray(cov1, np.float64), np.asarray(cov2, np.float64)
    s = _sqrt_psd(cov1)
    middle = s @ cov2 @ s
    trace_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0, None)).sum()
    diff = mu1 - mu2
    value = diff @ diff + np.trace(cov1) + np.trace(cov2) - 2 * trace_sqrt
    return float(max(value, 0.0))  # a distance: round-off below 0 is 0


def fid(stats_a, stats_b):
    return frechet_distance(stats_a.mean, stats_a.cov, stats_b.mean, stats_b.cov)


def kid(features_a, features_b, num_subsets=100, subset_size=1000, seed=0):
    """(mean, std) of the unbiased MMD^2 over random subsets, kernel (x.y / d + 1)^3."""
    a = np.asarray(features_a, np.float64)
    b = np.asarray(features_b, np.float64)
    m = min(subset_size, len(a), len(b))
    if m < 2:
        raise MetricError("KID needs at least 2 samples per set")
    d = a.shape[1]
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(num_subsets):
        x = a[rng.choice(len(a), m, replace=False)]
        y = b[rng.choice(len(b), m, replace=False)]
        k_xx = (x @ x.T / d + 1) ** 3
        k_yy = (y @ y.T / d + 1) ** 3
        k_xy = (x @ y.T / d + 1) ** 3
        values.append((k_xx.sum() - np.trace(k_xx)) / (m * (m - 1))
                      + (k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
                      - 2 * k_xy.mean())
    return float(np.mean(values)), float(np.std(values))


class InceptionScore:
    """Streaming IS over `splits` contiguous splits of `num_samples` samples.

    E_x KL(p(y|x) || p(y)) = E_x[sum_y p log p] - sum_y p(y) log p(y), so each
    split keeps sum_x p(y|x) and sum_x sum_y p log p, never the probabilities.
    """

    def __init__(self, num_samples, num_classes, splits=10):
        if num_samples < splits:
            raise MetricError(f"IS with {splits} splits needs >= {splits} samples; got {num_samples}")
        self.num_samples = num_samples
        self.splits = splits
        self.p_sum = np.zeros((splits, num_classes), np.float64)
        self.plogp = np.zeros(splits, np.float64)
        self.count = np.zeros(splits, np.int64)
        self.seen = 0

    def update(self, logits):
        logits = np.asarray(logits, np.float64)
        logits = logits - logits.max(axis=1, keepdims=True)
        log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        p = np.exp(log_p)
        index = (np.arange(self.seen, self.seen + len(p)) * self.splits) // self.num_samples
        index = np.minimum(index, self.splits - 1)
        np.add.at(self.p_sum, index, p)
        np.add.at(self.plogp, index, (p * log_p).sum(axis=1))
        np.add.at(self.count, index, 1)
        self.seen += len(p)

    def result(self):
        """(mean, std) of exp(KL) over the splits."""
        scores = []
        for s in range(self.splits):
            if self.count[s] == 0:
                continue
            p_y = self.p_sum[s] / self.count[s]
            kl = self.plogp[s] / self.count[s] - np.sum(p_y * np.log(np.clip(p_y, 1e-30, None)))
            scores.append(np.exp(kl))
        return float(np.mean(scores)), float(np.std(scores))


def _squared_distances(a, b):
    """(len(a), len(b)) squared Euclidean distances, float64, never negative."""
    d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.maximum(d, 0.0)


def _kth_neighbour_radii(features, k, batch_size):
    """Squared distance of each feature to its k-th nearest other feature."""
    radii = np.empty(len(features))
    for start in range(0, len(features), batch_size):
        d = _squared_distances(features[start:start + batch_size], features)
        # Column k of the sorted row: index 0 is the point itself (distance 0).
        radii[start:start + batch_size] = np.partition(d, k, axis=1)[:, k]
    return radii


def _coverage(queries, centres, radii, batch_size):
    """Share of `queries` inside at least one ball (centre, radius)."""
    inside = 0
    for start in range(0, len(queries), batch_size):
        d = _squared_distances(queries[start:start + batch_size], centres)
        inside += int((d <= radii[None, :]).any(axis=1).sum())
    return inside / len(queries)


def precision_recall(real_features, fake_features, k=3, batch_size=1000):
    """Improved precision and recall (Kynkaanniemi et al. 2019).

    Each set's manifold is the union of balls around its points reaching their
    k-th nearest neighbour. Precision: the share of fake samples inside the
    real manifold (quality); recall: the share of real samples inside the fake
    manifold (coverage, which falls when G collapses). Returns (precision, recall).
    """
    real = np.asarray(real_features, np.float64)
    fake = np.asarray(fake_features, np.float64)
    if min(len(real), len(fake)) < k + 1:
        raise MetricError(f"precision/recall with k={k} needs at least {k + 1} samples per set; "
                          f"got {len(real)} real and {len(fake)} fake")
    precision = _coverage(fake, real, _kth_neighbour_radii(real, k, batch_size), batch_size)
    recall = _coverage(real, fake, _kth_neighbour_radii(fake, k, batch_size), batch_size)
    return precision, recall


def class_accuracy(logits, labels):
    """Share of samples whose arg-max class is their label."""
    logits, labels = np.asarray(logits), np.asarray(labels)
    if len(logits) != len(labels) or not len(labels):
        raise MetricError(f"class accuracy needs one label per sample; got {len(logits)} samples "
                          f"and {len(labels)} labels")
    return float((logits.argmax(axis=1) == labels).mean())
