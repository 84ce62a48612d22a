"""heykeetae PyTorch checkpoints imported into sagan_tf, compared with PyTorch itself."""

import json
import os
import sys

import numpy as np
import pytest
import tensorflow as tf
import torch

from sagan_tf import heykeetae, training
from sagan_tf.models import Discriminator, Generator
from tests import heykeetae_torch as hk
from tests.commands import run_command, run_main


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A heykeetae G and D with non-trivial weights: BN statistics from a few training-mode
    calls, attention gammas set, power iterations at their fixed point (as after training),
    saved as its trainer saves them."""
    torch.manual_seed(0)
    g, d = hk.Generator(), hk.Discriminator()
    with torch.no_grad():
        g.train()
        for _ in range(3):
            g(torch.randn(16, 128))
        for net in (g, d):
            net.attn1.gamma.fill_(0.7)
            net.attn2.gamma.fill_(-0.5)
    hk.settle(g)
    hk.settle(d)
    g.eval()
    d.eval()
    directory = tmp_path_factory.mktemp("heykeetae")
    paths = str(directory / "1000_G.pth"), str(directory / "1000_D.pth")
    torch.save(g.state_dict(), paths[0])
    torch.save(d.state_dict(), paths[1])
    return g, d, paths


def _pytorch_outputs(g, d, z, images):
    with torch.no_grad():
        fake = g(torch.from_numpy(z))[0].numpy().transpose(0, 2, 3, 1)  # NCHW -> NHWC
        logits = d(torch.from_numpy(images.transpose(0, 3, 1, 2)))[0].numpy()
    return fake, logits


@pytest.fixture(scope="module")
def imported(checkpoint):
    _, _, (g_path, d_path) = checkpoint
    return heykeetae.load(g_path, d_path)


def test_generator_and_discriminator_match_pytorch(checkpoint, imported):
    g, d, _ = checkpoint
    generator, discriminator, info = imported
    rng = np.random.default_rng(1)
    z = rng.normal(size=(6, 128)).astype("float32")
    images = rng.uniform(-1, 1, size=(6, 64, 64, 3)).astype("float32")
    fake, logits = _pytorch_outputs(g, d, z, images)
    ours = np.asarray(generator(z, training=False))
    assert np.abs(fake).max() > 0.05  # not a trivially flat image
    assert np.abs(ours - fake).max() < 1e-4
    our_logits = np.asarray(discriminator(images, training=False))
    assert np.abs(logits).max() > 1e-3
    assert np.abs(our_logits - logits).max() < 1e-4
    # D on G's images too (the path training takes).
    fake_logits = np.asarray(discriminator(ours, training=False))
    with torch.no_grad():
        ref = d(torch.from_numpy(fake.transpose(0, 3, 1, 2)))[0].numpy()
    assert np.abs(fake_logits - ref).max() < 1e-4
    assert info["z_dim"] == 128 and info["conv_dim"] == 64 and info["heykeetae_step"] == 1000
    assert info["sigma_change"] < 1e-3


def test_parameter_counts_equal_pytorch(checkpoint, imported):
    g, d, _ = checkpoint
    generator, discriminator, _ = imported
    # heykeetae's models at 64 px count G 3,832,885 and D 3,175,299 trainable parameters.
    for torch_net, ours, count in ((g, generator, 3_832_885), (d, discriminator, 3_175_299)):
        trainable = sum(p.numel() for name, p in torch_net.named_parameters()
                        if not name.endswith(("weight_u", "weight_v")))
        assert trainable == count
        assert sum(int(np.prod(w.shape)) for w in ours.trainable_weights) == count
    assert len(g.state_dict()) == 52 and len(d.state_dict()) == 32


def test_imported_model_is_the_heykeetae_preset(imported):
    generator, discriminator, _ = imported
    config = generator.get_config()
    assert config["sn_transpose_flatten"] == "input"
    assert config["batch_norm_momentum"] == 0.9
    assert config["kernel_initializer"] == "pytorch"
    assert not config["attention_spectral_norm"]
    assert Generator.from_config(config).get_config() == config
    assert Discriminator.from_config(discriminator.get_config()).get_config() == \
        discriminator.get_config()


def test_training_power_iteration_is_heykeetaes(checkpoint, imported):
    """From the same (unconverged) u, a training-mode call advances u and gives sigma
    exactly as heykeetae's forward does, for a ConvTranspose (flattened by input
    channels) and a Conv."""
    g, d, _ = checkpoint
    generator, discriminator, _ = imported
    rng = np.random.default_rng(4)
    for sn_torch, sn_ours in ((g.l2[0], generator.stages[1][0]),
                              (d.l3[0], discriminator.stages[2][0])):
        u = rng.normal(size=sn_ours.u.shape).astype("float32")
        u /= np.linalg.norm(u)
        sn_torch.module.weight_u.data = torch.from_numpy(u.copy())
        sn_ours.u.assign(u)
        with torch.no_grad():
            sigma_torch = float(sn_torch.update_u_v())
        kernel = np.asarray(sn_ours.normalized_kernel(training=True))
        raw = np.asarray(sn_ours.raw_kernel)
        sigma_ours = float(np.sum(raw * raw) / np.sum(raw * kernel))
        assert abs(sigma_ours - sigma_torch) < 1e-5 * sigma_torch
        np.testing.assert_allclose(np.asarray(sn_ours.u), sn_torch.module.weight_u.numpy(),
                                   atol=1e-5)
    hk.settle(g)  # back to the fixed point for the other tests
    hk.settle(d)


def test_dataparallel_prefix_is_stripped(checkpoint, tmp_path):
    g, _, _ = checkpoint
    path = str(tmp_path / "G.pth")
    torch.save({"module." + k: v for k, v in g.state_dict().items()}, path)
    generator, _, _ = heykeetae.load(path)
    z = np.random.default_rng(2).normal(size=(2, 128)).astype("float32")
    with torch.no_grad():
        fake = g(torch.from_numpy(z))[0].numpy().transpose(0, 2, 3, 1)
    assert np.abs(np.asarray(generator(z, training=False)) - fake).max() < 1e-4


def test_cli_exports_a_savedmodel_and_a_resumable_workdir(checkpoint, tmp_path):
    g, _, (g_path, d_path) = checkpoint
    workdir, export_dir = str(tmp_path / "run"), str(tmp_path / "savedmodels")
    result = run_command("sagan_tf.import_torch", f"--generator={g_path}",
                         f"--discriminator={d_path}", f"--workdir={workdir}", "--dataset=mnist5k",
                         "--export_name=hk", f"--export_dir={export_dir}", timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    version = os.path.join(export_dir, "hk", "1")
    loaded = tf.saved_model.load(version)
    z = np.random.default_rng(3).normal(size=(4, 128)).astype("float32")
    served = loaded.signatures["serving_default"](z=tf.constant(z))["images"].numpy()
    with torch.no_grad():
        fake = g(torch.from_numpy(z))[0].numpy().transpose(0, 2, 3, 1)
    expected = np.round((np.clip(fake, -1, 1) + 1) * 127.5)
    assert np.abs(served.astype(int) - expected).max() <= 1
    assert set(loaded.signatures) == {"serving_default", "generate", "attention"}
    with open(os.path.join(version, "assets.extra.json")) as f:
        assert json.load(f)["source"]["heykeetae"]["heykeetae_step"] == 1000
    # The workdir resumes: one more training step from the imported weights.
    config = training.TrainConfig.from_flat(dataset="mnist5k", workdir=workdir, preset="heykeetae_64",
                                  steps=1, batch_size=4, export=False, log_every=1,
                                  sample_every=1, checkpoint_every=1)
    run = training.run(config)
    assert run["step"] == 1
    restored = run["gan"].generator.attention_layers[0].gamma
    assert abs(float(np.asarray(restored)) - 0.7) < 0.01  # imported, then one small update


# The last field: run the command in a fresh process (once), or its main in this one.
@pytest.mark.parametrize("corrupt, message, run", [
    (lambda s: s.pop("attn1.gamma"), "key 'attn1.gamma' (shape [1]) is missing", run_command),
    (lambda s: s.__setitem__("l2.0.module.weight_bar", torch.zeros(512, 256, 3, 3)),
     "'l2.0.module.weight_bar' has shape [512, 256, 3, 3], expected [512, 256, 4, 4]", run_main),
    (lambda s: s.__setitem__("attn1.f_.weight", torch.zeros(1)), "unexpected key 'attn1.f_",
     run_main),
])
def test_bad_state_dict_is_one_line_and_writes_nothing(checkpoint, tmp_path, corrupt, message,
                                                       run):
    g, _, _ = checkpoint
    state = dict(g.state_dict())
    corrupt(state)
    path = str(tmp_path / "G.pth")
    torch.save(state, path)
    with pytest.raises(heykeetae.TorchImportError, match=message.replace("[", r"\[")
                       .replace("]", r"\]").replace("(", r"\(").replace(")", r"\)")):
        heykeetae.load(path)
    export_dir = tmp_path / "savedmodels"
    result = run("sagan_tf.import_torch", f"--generator={path}", "--export_name=bad",
                 f"--export_dir={export_dir}")
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1].startswith("error: ")
    assert message in result.stderr
    assert not export_dir.exists()


def test_not_a_state_dict_and_missing_torch(tmp_path, monkeypatch):
    path = str(tmp_path / "model.pth")
    torch.save([torch.zeros(2)], path)
    with pytest.raises(heykeetae.TorchImportError, match="does not hold a state_dict"):
        heykeetae.read_state_dict(path)
    (tmp_path / "junk.pth").write_bytes(b"not a zip")
    with pytest.raises(heykeetae.TorchImportError, match="not a readable PyTorch file"):
        heykeetae.read_state_dict(str(tmp_path / "junk.pth"))
    with pytest.raises(heykeetae.TorchImportError, match="imsize=128"):
        heykeetae.load(path, imsize=128)
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(heykeetae.TorchImportError, match="pip install \"sagan-tf\[torch\]\""):
        heykeetae.read_state_dict(path)


def test_pytorch_initializers_match_torch_bounds():
    """kernel_initializer="pytorch": every kernel and bias of heykeetae_64 is uniform within
    PyTorch's bound 1/sqrt(fan_in), fan_in as torch computes it for the same layer."""
    torch_g = hk.Generator()
    generator = Generator.from_preset("heykeetae_64")
    generator.build()
    checked = 0
    for key, shape, target in heykeetae.generator_entries(generator):
        if target is None or target[0] not in ("kernel", "bias") or "l1.1" in key:
            continue
        module = torch_g.get_submodule(key.rsplit(".", 1)[0])
        weight = module.weight_bar if hasattr(module, "weight_bar") else module.weight
        fan_in, _ = torch.nn.init._calculate_fan_in_and_fan_out(weight)
        bound = 1.0 / np.sqrt(fan_in)
        attribute, layer = target
        variable = layer.raw_kernel if hasattr(layer, "raw_kernel") else getattr(layer, attribute)
        if attribute == "bias":
            variable = layer.bias
        values = np.asarray(variable)
        assert np.abs(values).max() <= bound * (1 + 1e-6), key
        assert np.abs(values).min() < np.abs(values).max(), key  # drawn, not constant
        if values.size >= 256:  # enough draws for the spread: U(-b, b) has std b/sqrt(3)
            assert np.abs(values).max() > 0.9 * bound, key
            assert abs(values.std() - bound / np.sqrt(3)) < 0.1 * bound / np.sqrt(3), key
        checked += 1
    assert checked == 2 * (4 + 1 + 6)  # 4 SN ConvT, last ConvT, 6 attention convs
