"""The benchmark commands run and their printed figures are consistent with each other."""

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from tests.commands import ENV, ROOT, run_command


def _lines(*args):
    result = subprocess.run([sys.executable, *args], cwd=ROOT, env=ENV, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


def test_train_benchmark_prints_flops_peak_and_attention_share():
    (line,) = _lines("-m", "sagan_tf.benchmark", "--mode=train", "--preset=dcgan_32",
                     "--batch=4", "--steps=2", "--attention_share", "--steps_per_execution=2")
    # A 32 px step of this model is well under a GFLOP per image and far above a MFLOP.
    assert 0.05 < line["gflop_per_img"] < 5
    assert line["achieved_gflops"] == pytest.approx(line["img_per_s"] * line["gflop_per_img"],
                                                    rel=0.02, abs=0.1)
    assert line["peak_fraction"] == pytest.approx(
        line["achieved_gflops"] / line["matmul_peak_gflops"], rel=0.02, abs=0.002)
    assert line["attention_share"] == pytest.approx(
        1 - line["img_per_s"] / line["img_per_s_no_attention"], abs=0.002)
    assert 0 < line["attention_flop_share"] < 1
    assert line["steps_per_execution"] == 2


@pytest.mark.parametrize("precision", ["float32", "mixed_bfloat16"])
def test_attention_benchmark_takes_the_tiled_path(precision):
    (line,) = _lines("-m", "sagan_tf.benchmark", "--mode=attention", "--imsize=16", "--batch_size=2",
                     "--steps=1", "--channels=16", "--query_tile_size=64",
                     f"--precision={precision}")
    assert line["positions"] == 256 and line["tiled"] and line["precision"] == precision
    assert line["dense_map_gb"] == round(2 * 256 * 256 * 4 / 2**30, 2)
    assert line["img_per_s"] > 0 and line["peak_rss_mb"] > 0


def test_pytorch_reference_benchmark_counts_its_flops():
    (line,) = _lines(os.path.join("benchmarks", "pytorch_sagan.py"), "--batch=2", "--steps=1")
    assert (line["g_params"], line["d_params"]) == (3_832_885, 3_175_299)  # heykeetae's counts
    # FlopCounterMode: one step of the 64 px model is about 3.4 GFLOP per image.
    assert 3.0 < line["gflop_per_img"] < 4.0


TINY = ["--base_channels=8", "--batch_size=8", "--ema_start=0"]


def test_the_compare_protocol_runs_at_tiny_size(tmp_path):
    keep = tmp_path / "runs"
    result = run_command("benchmarks.compare", "--variants=baseline,sagan", "--seeds=0",
                         "--steps=2", "--eval_samples=20", "--log_every=1", *TINY,
                         f"--keep_workdirs={keep}", f"--out={tmp_path / 'rows.jsonl'}",
                         timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "baseline seed 0: step 2/2" in result.stdout and "sagan seed 0: step 2/2" in result.stdout
    rows = [json.loads(line) for line in open(tmp_path / "rows.jsonl")]
    assert [(r["variant"], r["steps"]) for r in rows] == [("baseline", 2), ("sagan", 2)]
    assert all(r["fid"] > 0 and 0 <= r["recall"] <= 1 and r["class_accuracy"] is not None
               for r in rows)
    # Model sizes: the SavedModel on disk, and G + D's weights at 4 bytes each.
    assert all(r["export_mb"] > 0 and r["g_d_mb"] > 0 for r in rows)
    assert "| baseline (n=1) |" in result.stdout and "| sagan (n=1) |" in result.stdout
    assert sorted(os.listdir(keep)) == ["baseline_s0", "sagan_s0"]
    assert os.path.exists(keep / "sagan_s0" / "summary.json")
    # Each run trained the recipe (mnist5k_32, the default) with the variant's options.
    with open(keep / "baseline_s0" / "config.json") as f:
        flags = json.load(f)["flags"]
    assert (flags["preset"], flags["g_attention"], flags["base_channels"]) == (
        "baseline_32", [], 8)
    with open(keep / "sagan_s0" / "config.json") as f:
        flags = json.load(f)["flags"]
    assert (flags["preset"], flags["g_attention"], flags["eval_samples"]) == (
        "dcgan_32", [16], 20)


def test_the_compare_protocol_help_and_bad_input(capsys):
    from benchmarks import compare
    from sagan_tf import config as config_lib

    # --help: the recipe's options by section and the comparison's own, nothing of TF's.
    proc = run_command("benchmarks.compare", "--help", timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    for text in ("flags:\n  --epochs: Equal epochs", "--variants", "ada_lecam:", "--eval_samples: [eval]",
                 "--steps: [training]", "--minutes"):
        assert text in proc.stdout, text
    assert "--tt_check_filter" not in proc.stdout and proc.stderr.strip() == ""
    # The same names as sagan-train; old spellings map onto them with a notice.
    values = compare.parse(["--extra=--base_channels=8 --batch_size=16",
                            "--backbone=keras_inception", "--variants=sagan,ada"])
    assert (values.base_channels, values.batch_size, values.eval_backbone) == (
        8, 16, "keras_inception")
    # The default recipe: the Quick start's flag file.
    assert values.variants == ["sagan", "ada"] and (values.channels, values.steps) == (1, 2500)
    assert "--extra is deprecated" in capsys.readouterr().err
    assert config_lib.TrainConfig.from_flags(values).data.dataset == "mnist5k"
    with pytest.raises(config_lib.ConfigError, match="--eval_backbone: the classifier "
                       "backbone is trained on the dataset it scores"):
        compare.compare(compare.parse(["--dataset=cifar10"]))
    with pytest.raises(config_lib.ConfigError, match="--variants='attention' is unknown; use "
                       "one of \\['baseline'"):
        compare.compare(compare.parse(["--variants=sagan,attention"]))


def _compare_in_process(tmp_path, capsys, *args):
    from benchmarks import compare
    from tests.stand_ins import stand_in_graph

    graph = stand_in_graph(str(tmp_path / "graph.pb"))
    out = tmp_path / "rows.jsonl"
    # The flag file first: flags after it override it, as in sagan-train.
    compare.compare(compare.parse([
        *args, "--seeds=0", "--eval_samples=16", "--log_every=1", "--in_process",
        "--eval_backbone=inception_graph", f"--inception_graph={graph}", *TINY, f"--out={out}"]))
    return [json.loads(line) for line in open(out)], capsys.readouterr().out


def test_the_seeds_experiment_runs_on_mocked_cifar10(tmp_path, capsys,
                                                                 tfds_manual_files):
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=128):  # one real batch of 100
        rows, out = _compare_in_process(tmp_path, capsys, "--flagfile=cifar10_32",
                                        "--variants=baseline,sagan", "--steps=3")
    assert [(r["variant"], r["steps"], r["dataset"]) for r in rows] == [
        ("baseline", 3, "cifar10"), ("sagan", 3, "cifar10")]
    assert all(r["fid"] is not None and r["class_accuracy"] is None for r in rows)
    assert rows[0]["g_d_mb"] != rows[1]["g_d_mb"]  # a DCGAN and a ResNet SAGAN
    assert "| sagan (n=1) |" in out


def test_the_compare_protocol_runs_on_a_folder(tmp_path, capsys):
    from PIL import Image

    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(10):
        Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    rows, _ = _compare_in_process(tmp_path, capsys, "--flagfile=cifar10_32",
                                  f"--dataset=folder:{folder}", "--variants=ada_lecam",
                                  "--epochs=2")
    # Two passes over 10 images at batch 8: 20 images, 3 steps.
    assert [(r["variant"], r["steps"]) for r in rows] == [("ada_lecam", 3)]
    assert all(r["dataset"] == f"folder:{folder}" and r["fid"] is not None for r in rows)


@pytest.mark.parametrize("flags,expected", [("fpu avx2 amx_bf16 avx512_bf16", "amx"),
                                            ("fpu avx512f avx512_bf16", "avx512_bf16"),
                                            ("fpu avx2 fma", "none")])
def test_the_cpus_native_bfloat16_is_named(tmp_path, flags, expected):
    from sagan_tf.benchmarking import cpu_bf16_support

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {flags}\n\nprocessor\t: 1\nflags\t\t: {flags}\n")
    assert cpu_bf16_support(str(cpuinfo)) == expected
    assert cpu_bf16_support(str(tmp_path / "missing")) == "none"


@pytest.mark.parametrize("event,group", [
    ("gradient_tape/d/sn_conv3_1/convolution/Conv2DBackpropFilter:_MklNativeConv2DBackpropFilter",
     "convolution"),
    ("g/sn_conv1_1/conv_transpose:Conv2DBackpropInput", "convolution"),
    ("g/attention32_1/MatMul_1:_MklBatchMatMulV2", "attention_matmul"),
    ("MatMul_16:BatchMatMulV2", "attention_matmul"),  # the hand-written gradient's products
    ("g/attention32_1/Softmax:_MklSoftmax", "softmax"),
    ("g/attention32_1/sn_query_1/MatMul_3:MatMul", "matmul"),  # the 1x1 layer's own product
    ("g/sn_conv1_1/spectral_norm/MatMul_1:MatMul", "spectral_norm"),  # power iteration
    ("gradient_tape/g/sn_conv1_1/spectral_norm/truediv/RealDiv:RealDiv", "spectral_norm"),
    ("g/sn_conv1_1/spectral_norm/transpose:Transpose", "spectral_norm"),
    ("g/sn_conv1_1/BiasAdd:BiasAdd", "elementwise"),
    ("g/bn2_1/batch_norm_1/batchnorm/mul_1:Mul", "batch_norm"),
    ("adam_1/Sqrt_27:Sqrt", "optimizer"),
    ("g/attention32_1/Cast:Cast", "cast"),
    ("concat_9:ConcatV2", "layout"),
    ("g/Relu_1:_MklRelu", "elementwise"),
    ("ExecutorState::Process", None),
    ("EagerLocalExecute: __inference_step_7654", None),
    ("while:While", None),
    ("ParallelFor", None),
])
def test_profile_groups_ops_by_what_they_do(event, group):
    from sagan_tf.benchmarking import op_group

    assert op_group(event) == group


def test_profile_prints_time_by_op_group(tmp_path):
    (line,) = _lines("-m", "sagan_tf.benchmark", "--mode=profile", "--preset=dcgan_32",
                     "--batch_size=4", "--steps=1", f"--profile_dir={tmp_path}")
    shares = line["group_share"]
    assert sum(shares.values()) == pytest.approx(1.0, abs=0.01)
    ms = line["group_ms_per_step"]
    assert sum(ms.values()) == pytest.approx(line["op_ms_per_step"], abs=0.5)
    for group in ("convolution", "attention_matmul", "softmax", "spectral_norm", "optimizer"):
        assert ms[group] > 0, group
    assert all(":" in event for event, _ in line["top_ops"])
    assert list(tmp_path.rglob("*.xplane.pb"))  # kept for TensorBoard


def test_old_benchmark_spellings_still_work_with_a_notice(monkeypatch, caplog):
    from sagan_tf import benchmarking
    from tests.commands import run_main

    seen = {}

    def record(imsize, batch, steps, channels, tile, precision, xla):
        seen.update(batch=batch, xla=xla)

    monkeypatch.setattr(benchmarking, "bench_attention", record)
    with caplog.at_level("WARNING"):
        proc = run_main("sagan_tf.benchmark", "--mode=attention", "--batch=3", "--xla")
    assert proc.returncode == 0, proc.stderr
    assert seen == {"batch": 3, "xla": True}
    for old, new in (("batch", "batch_size"), ("xla", "jit_compile")):
        assert f"--{old} is deprecated and will be removed in the next release; use --{new}" \
            in caplog.text


def test_the_benchmark_takes_the_training_options_it_shares():
    """Options that sagan-benchmark shares with sagan-train are one definition: the same
    default and help, validated by the same section."""
    from absl import flags

    from sagan_tf import benchmark, config

    ours, train = flags.FlagValues(), flags.FlagValues()
    benchmark.define_flags(ours)
    config.define_flags(train)
    for name in benchmark.SHARED_OPTIONS:
        default = benchmark.DEFAULTS.get(name, train[name].default)
        assert (ours[name].default, ours[name].help) == (default, train[name].help)
    result = run_command("sagan_tf.benchmark", "--mode=data", "--ema_decay=1.5", "--steps=1",
                         timeout=300)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "error: --ema_decay: must be in (0, 1); got 1.5")


def test_the_benchmark_runs_the_standard_set_unless_one_case_is_asked(monkeypatch):
    """No --mode, --preset or --imsize: the standard set (dcgan_64 and resnet_128, with
    and without XLA, then generation); otherwise the one case, dcgan_64 unless given."""
    from sagan_tf import benchmarking
    from tests.commands import run_main

    calls = []
    for name in ("bench_train", "bench_generate", "bench_attention", "bench_profile",
                 "bench_serve", "bench_data"):
        monkeypatch.setattr(benchmarking, name,
                            lambda *a, _name=name, **k: calls.append((_name, *a[:2])))
    for args, expected in [
        ([], [("bench_train", "dcgan_64", 64)] * 2 + [("bench_train", "resnet_128", 64)] * 2
         + [("bench_generate", "dcgan_64", 64)]),
        (["--preset=dcgan_64"], [("bench_train", "dcgan_64", 64)]),
        (["--preset=resnet_64", "--imsize=128", "--batch_size=8"],
         [("bench_train", "resnet_128", 8)]),
        (["--mode=generate"], [("bench_generate", "dcgan_64", 64)]),
        (["--mode=serve", "--preset=dcgan_32"], [("bench_serve", "dcgan_32", 10)]),
    ]:
        calls.clear()
        proc = run_main("sagan_tf.benchmark", *args)
        assert (proc.returncode, calls) == (0, expected), (args, proc.stderr)
