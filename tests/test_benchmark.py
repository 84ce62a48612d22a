"""The benchmark commands run and their printed figures are consistent with each other."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3")


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


def test_attention_benchmark_takes_the_tiled_path():
    (line,) = _lines("-m", "sagan_tf.benchmark", "--mode=attention", "--imsize=16", "--batch=2",
                     "--steps=1", "--channels=16", "--query_tile_size=64")
    assert line["positions"] == 256 and line["tiled"]
    assert line["dense_map_gb"] == round(2 * 256 * 256 * 4 / 2**30, 2)
    assert line["img_per_s"] > 0 and line["peak_rss_mb"] > 0


def test_pytorch_reference_benchmark_counts_its_flops():
    (line,) = _lines(os.path.join("benchmarks", "pytorch_sagan.py"), "--batch=2", "--steps=1")
    assert (line["g_params"], line["d_params"]) == (3_832_885, 3_175_299)  # heykeetae's counts
    # FlopCounterMode: one step of the 64 px model is about 3.4 GFLOP per image.
    assert 3.0 < line["gflop_per_img"] < 4.0


def test_the_compare_protocol_runs_at_tiny_size(tmp_path):
    keep = tmp_path / "runs"
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.compare_mnist5k", "--variants=baseline,sagan",
         "--seeds=0", "--steps=2", "--eval_samples=20", "--log_every=1",
         "--extra=--base_channels=8 --batch_size=8 --ema_start=0", f"--keep_workdirs={keep}",
         f"--out={tmp_path / 'rows.jsonl'}"], cwd=ROOT, env=ENV, capture_output=True, text=True,
        timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "baseline seed 0: step 2/2" in result.stdout and "sagan seed 0: step 2/2" in result.stdout
    rows = [json.loads(line) for line in open(tmp_path / "rows.jsonl")]
    assert [(r["variant"], r["steps"]) for r in rows] == [("baseline", 2), ("sagan", 2)]
    assert all(r["fid"] > 0 and 0 <= r["recall"] <= 1 for r in rows)
    assert "| baseline (n=1) |" in result.stdout and "| sagan (n=1) |" in result.stdout
    assert sorted(os.listdir(keep)) == ["baseline_s0", "sagan_s0"]
    assert os.path.exists(keep / "sagan_s0" / "summary.json")
    help_text = subprocess.run([sys.executable, "-m", "benchmarks.compare_mnist5k", "--help"],
                               cwd=ROOT, env=ENV, capture_output=True, text=True).stdout
    assert "(default: 2500)" in help_text and "paper_8_16:" in help_text


@pytest.mark.parametrize("flags,expected", [("fpu avx2 amx_bf16 avx512_bf16", "amx"),
                                            ("fpu avx512f avx512_bf16", "avx512_bf16"),
                                            ("fpu avx2 fma", "none")])
def test_the_cpus_native_bfloat16_is_named(tmp_path, flags, expected):
    from sagan_tf.benchmarking import cpu_bf16_support

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {flags}\n\nprocessor\t: 1\nflags\t\t: {flags}\n")
    assert cpu_bf16_support(str(cpuinfo)) == expected
    assert cpu_bf16_support(str(tmp_path / "missing")) == "none"
