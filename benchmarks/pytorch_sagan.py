"""The popular PyTorch SAGAN's 64 px model, timed the way `sagan_tf.benchmark` times ours.

Written from heykeetae/Self-Attention-GAN's architecture (z 128,
conv_dim 64; SN on every conv but G's last ConvT and D's last conv; attention after G's 16x16 and
32x32 layers and D's 8x8 and 4x4 layers), and counted at its best: no G gradients in the D step
(`torch.no_grad`), D frozen in the G step, built-in spectral_norm, set_to_none zero_grad.

    pip install torch==2.13.0   # the CPU wheel; not a dependency of sagan_tf
    python benchmarks/pytorch_sagan.py --batch 64 --steps 10
Prints one JSON line like sagan_tf.benchmark.
"""

import argparse
import json
import resource
import statistics
import time

import torch
from torch import nn
from torch.nn.utils import spectral_norm as sn
from torch.utils.flop_counter import FlopCounterMode


class SelfAttention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.q = nn.Conv2d(c, c // 8, 1)
        self.k = nn.Conv2d(c, c // 8, 1)
        self.v = nn.Conv2d(c, c, 1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        b, c, h, w = x.shape
        q = self.q(x).view(b, -1, h * w).permute(0, 2, 1)  # B, N, C/8
        k = self.k(x).view(b, -1, h * w)  # B, C/8, N
        attn = torch.softmax(torch.bmm(q, k), dim=-1)  # B, N, N
        v = self.v(x).view(b, -1, h * w)  # B, C, N
        o = torch.bmm(v, attn.permute(0, 2, 1)).view(b, c, h, w)
        return self.gamma * o + x


def generator(z_dim=128, d=64):
    def up(i, o):
        return [sn(nn.ConvTranspose2d(i, o, 4, 2, 1)), nn.BatchNorm2d(o), nn.ReLU()]
    return nn.Sequential(
        sn(nn.ConvTranspose2d(z_dim, d * 8, 4)), nn.BatchNorm2d(d * 8), nn.ReLU(),
        *up(d * 8, d * 4), *up(d * 4, d * 2), SelfAttention(d * 2),
        *up(d * 2, d), SelfAttention(d),
        nn.ConvTranspose2d(d, 3, 4, 2, 1), nn.Tanh())


def discriminator(d=64):
    def down(i, o):
        return [sn(nn.Conv2d(i, o, 4, 2, 1)), nn.LeakyReLU(0.1)]
    return nn.Sequential(
        *down(3, d), *down(d, d * 2), *down(d * 2, d * 4), SelfAttention(d * 4),
        *down(d * 4, d * 8), SelfAttention(d * 8), nn.Conv2d(d * 8, 1, 4))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--mode", choices=["train", "generate"], default="train")
    parser.add_argument("--precision", choices=["float32", "bfloat16"], default="float32",
                        help="bfloat16: the step under torch.autocast('cpu', torch.bfloat16), "
                             "the pair of sagan_tf's --precision=mixed_bfloat16")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    g, d = generator(), discriminator()
    if args.mode == "generate":
        return bench_generate(g, args)
    g_opt = torch.optim.Adam(g.parameters(), 1e-4, betas=(0.0, 0.9))
    d_opt = torch.optim.Adam(d.parameters(), 4e-4, betas=(0.0, 0.9))
    real = torch.rand(args.batch, 3, 64, 64) * 2 - 1
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731

    def step():
        with torch.autocast("cpu", torch.bfloat16, enabled=args.precision == "bfloat16"):
            plain_step()

    def plain_step():
        z = torch.randn(args.batch, 128, 1, 1)
        with torch.no_grad():
            fake = g(z)
        d_loss = torch.relu(1 - d(real)).mean() + torch.relu(1 + d(fake)).mean()
        d_opt.zero_grad(set_to_none=True)
        d_loss.backward()
        d_opt.step()
        for p in d.parameters():
            p.requires_grad_(False)
        g_loss = -d(g(torch.randn(args.batch, 128, 1, 1))).mean()
        g_opt.zero_grad(set_to_none=True)
        g_loss.backward()
        g_opt.step()
        for p in d.parameters():
            p.requires_grad_(True)

    for _ in range(3):
        step()
    times = []
    for _ in range(args.steps):  # the median step, as sagan_tf.benchmark reports
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    ips = args.batch / statistics.median(times)
    with FlopCounterMode(display=False) as counter:  # convolutions and matmuls of one step
        step()
    gflop = counter.get_total_flops() / args.batch / 1e9
    peak = matmul_peak_gflops(dtype=torch.bfloat16 if args.precision == "bfloat16"
                              else torch.float32)
    print(json.dumps({"mode": "train", "impl": "pytorch", "preset": "dcgan_64", "imsize": 64,
                      "batch": args.batch, "threads": args.threads, "precision": args.precision,
                      "g_params": count(g), "d_params": count(d),
                      "img_per_s": round(ips, 2), "gflop_per_img": round(gflop, 3),
                      "achieved_gflops": round(ips * gflop, 1),
                      "matmul_peak_gflops": round(peak, 1),
                      "peak_fraction": round(ips * gflop / peak, 3),
                      "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}))


def matmul_peak_gflops(n=2048, reps=20, dtype=torch.float32):
    """Matmul rate of this machine in PyTorch in `dtype`: the best of `reps` products."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    for _ in range(3):
        a @ b
    best = float("inf")
    for _ in range(reps):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def bench_generate(g, args):
    """Generator inference (eval mode, no autograd), as sagan_tf.benchmark --mode=serve."""
    g.eval()
    z = torch.randn(args.batch, 128, 1, 1)
    with torch.no_grad():
        for _ in range(3):
            g(z)
        start = time.perf_counter()
        for _ in range(args.steps):
            g(z)
        elapsed = time.perf_counter() - start
    print(json.dumps({"mode": "generate", "impl": "pytorch", "preset": "dcgan_64", "imsize": 64,
                      "batch": args.batch, "threads": args.threads,
                      "img_per_s": round(args.steps * args.batch / elapsed, 2)}))


if __name__ == "__main__":
    main()
