"""heykeetae/Self-Attention-GAN's 64 px models in PyTorch, for the import tests.

Written from that repository's `sagan_models.py` and `spectral.py` (commit
8714a54) as read with the search tool: the same modules under the same
attribute names, so `state_dict()` has its keys (`l1.0.module.weight_bar`,
`attn1.query_conv.weight`, `last.0.bias`, ...), and the same arithmetic: its
`SpectralNorm` flattens a weight by its first dimension (a ConvTranspose2d's
input channels), runs one power iteration on every forward call, eval mode
too, and stores u and v.
"""

import torch
from torch import nn


def _l2normalize(v, eps=1e-12):
    return v / (v.norm() + eps)


class SpectralNorm(nn.Module):
    def __init__(self, module):
        super().__init__()
        self.module = module
        w = module.weight
        height = w.shape[0]
        width = w.view(height, -1).shape[1]
        u = nn.Parameter(_l2normalize(w.data.new(height).normal_(0, 1)), requires_grad=False)
        v = nn.Parameter(_l2normalize(w.data.new(width).normal_(0, 1)), requires_grad=False)
        w_bar = nn.Parameter(w.data)
        del module._parameters["weight"]
        module.register_parameter("weight_u", u)
        module.register_parameter("weight_v", v)
        module.register_parameter("weight_bar", w_bar)

    def update_u_v(self):
        m = self.module
        w = m.weight_bar
        height = w.shape[0]
        m.weight_v.data = _l2normalize(torch.mv(torch.t(w.view(height, -1).data), m.weight_u.data))
        m.weight_u.data = _l2normalize(torch.mv(w.view(height, -1).data, m.weight_v.data))
        sigma = m.weight_u.dot(w.view(height, -1).mv(m.weight_v))
        m.weight = w / sigma.expand_as(w)
        return sigma

    def forward(self, x):
        self.update_u_v()
        return self.module.forward(x)


class SelfAttn(nn.Module):
    def __init__(self, in_dim):
        super().__init__()
        self.query_conv = nn.Conv2d(in_dim, in_dim // 8, 1)
        self.key_conv = nn.Conv2d(in_dim, in_dim // 8, 1)
        self.value_conv = nn.Conv2d(in_dim, in_dim, 1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        b, c, w, h = x.size()
        q = self.query_conv(x).view(b, -1, w * h).permute(0, 2, 1)  # B, N, C/8
        k = self.key_conv(x).view(b, -1, w * h)  # B, C/8, N
        attention = torch.softmax(torch.bmm(q, k), dim=-1)  # B, N, N
        v = self.value_conv(x).view(b, -1, w * h)  # B, C, N
        out = torch.bmm(v, attention.permute(0, 2, 1)).view(b, c, w, h)
        return self.gamma * out + x, attention


class Generator(nn.Module):
    def __init__(self, z_dim=128, conv_dim=64):
        super().__init__()
        d = conv_dim
        self.l4 = nn.Sequential(SpectralNorm(nn.ConvTranspose2d(d * 2, d, 4, 2, 1)),
                                nn.BatchNorm2d(d), nn.ReLU())
        self.l1 = nn.Sequential(SpectralNorm(nn.ConvTranspose2d(z_dim, d * 8, 4)),
                                nn.BatchNorm2d(d * 8), nn.ReLU())
        self.l2 = nn.Sequential(SpectralNorm(nn.ConvTranspose2d(d * 8, d * 4, 4, 2, 1)),
                                nn.BatchNorm2d(d * 4), nn.ReLU())
        self.l3 = nn.Sequential(SpectralNorm(nn.ConvTranspose2d(d * 4, d * 2, 4, 2, 1)),
                                nn.BatchNorm2d(d * 2), nn.ReLU())
        self.last = nn.Sequential(nn.ConvTranspose2d(d, 3, 4, 2, 1), nn.Tanh())
        self.attn1 = SelfAttn(d * 2)
        self.attn2 = SelfAttn(d)

    def forward(self, z):
        out = self.l3(self.l2(self.l1(z.view(z.size(0), z.size(1), 1, 1))))
        out, p1 = self.attn1(out)
        out, p2 = self.attn2(self.l4(out))
        return self.last(out), p1, p2


class Discriminator(nn.Module):
    def __init__(self, conv_dim=64):
        super().__init__()
        d = conv_dim
        self.l4 = nn.Sequential(SpectralNorm(nn.Conv2d(d * 4, d * 8, 4, 2, 1)), nn.LeakyReLU(0.1))
        self.l1 = nn.Sequential(SpectralNorm(nn.Conv2d(3, d, 4, 2, 1)), nn.LeakyReLU(0.1))
        self.l2 = nn.Sequential(SpectralNorm(nn.Conv2d(d, d * 2, 4, 2, 1)), nn.LeakyReLU(0.1))
        self.l3 = nn.Sequential(SpectralNorm(nn.Conv2d(d * 2, d * 4, 4, 2, 1)), nn.LeakyReLU(0.1))
        self.last = nn.Sequential(nn.Conv2d(d * 8, 1, 4))
        self.attn1 = SelfAttn(d * 4)
        self.attn2 = SelfAttn(d * 8)

    def forward(self, x):
        out, p1 = self.attn1(self.l3(self.l2(self.l1(x))))
        out, p2 = self.attn2(self.l4(out))
        return self.last(out).squeeze(), p1, p2


def spectral_norms(model):
    return [m for m in model.modules() if isinstance(m, SpectralNorm)]


def settle(model, iterations=3000):
    """Runs the power iteration of every SN layer to its fixed point (what a
    trained model's u is), as many forward calls would."""
    with torch.no_grad():
        for sn in spectral_norms(model):
            previous = 0.0
            for _ in range(iterations):
                sigma = float(sn.update_u_v())
                if abs(sigma - previous) <= 1e-9 * abs(sigma):
                    break
                previous = sigma
