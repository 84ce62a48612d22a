import json
import re
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from sagan_tf import sampling, serving, training
from sagan_tf.models import DCGANGenerator
from tests.commands import ENV, run_command, run_main


def _generator(num_classes=0):
    g = DCGANGenerator(16, z_dim=8, base_channels=8, attention_resolutions=(4, 8),
                  num_classes=num_classes)
    g.build()
    for layer in g.attention_layers:
        layer.gamma.assign(0.3)
    return g


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    base = tmp_path_factory.mktemp("savedmodels")
    g = _generator(num_classes=3)
    return g, serving.export_generator(g, str(base), "tiny"), base


def test_images_equal_the_keras_generator(exported):
    g, path, _ = exported
    loaded = tf.saved_model.load(path)
    z = np.random.default_rng(0).normal(size=(5, 8)).astype("float32")
    labels = np.array([0, 1, 2, 1, 0], "int32")
    served = loaded.signatures["serving_default"](z=tf.constant(z), labels=tf.constant(labels))
    expected = np.round((np.clip(np.asarray(g(z, labels)), -1, 1) + 1) * 127.5).astype(np.uint8)
    assert served["images"].dtype == tf.uint8 and served["images"].shape == (5, 16, 16, 3)
    assert np.abs(served["images"].numpy().astype(int) - expected.astype(int)).max() <= 1


def test_generate_is_seeded_and_truncated(exported):
    loaded = tf.saved_model.load(exported[1])
    gen = loaded.signatures["generate"]
    args = dict(num=tf.constant(6), truncation=tf.constant(0.5), labels=tf.constant([], tf.int32))
    a = gen(seed=tf.constant(7, tf.int64), **args)
    b = gen(seed=tf.constant(7, tf.int64), **args)
    c = gen(seed=tf.constant(8, tf.int64), **args)
    np.testing.assert_array_equal(a["images"], b["images"])
    assert not np.array_equal(a["z"], c["z"])
    assert a["images"].shape == (6, 16, 16, 3)
    assert np.abs(a["z"].numpy()).max() <= 0.5 + 1e-6
    # With truncation 2, z looks like N(0, 1) truncated at 2 (std about 0.88).
    wide = gen(seed=tf.constant(1, tf.int64), num=tf.constant(1000), truncation=tf.constant(2.0),
               labels=tf.constant([], tf.int32))["z"].numpy()
    assert abs(wide.std() - 0.88) < 0.02 and np.abs(wide).max() <= 2.0
    # Truncation 0 is none: z ~ N(0, 1), as training samples.
    untruncated = gen(seed=tf.constant(1, tf.int64), num=tf.constant(1000),
                      truncation=tf.constant(0.0), labels=tf.constant([], tf.int32))["z"].numpy()
    assert abs(untruncated.std() - 1.0) < 0.02 and np.abs(untruncated).max() > 3.0


def test_attention_signature(exported):
    loaded = tf.saved_model.load(exported[1])
    out = loaded.signatures["attention"](
        z=tf.zeros([2, 8]), labels=tf.constant([0, 2]), queries=tf.constant([[0, 0], [15, 7]]))
    assert out["images"].shape == (2, 16, 16, 3)
    assert out["attention_attention4"].shape == (2, 2, 4, 4)
    assert out["attention_attention8"].shape == (2, 2, 8, 8)
    for key in ("attention_attention4", "attention_attention8"):
        np.testing.assert_allclose(out[key].numpy().sum(axis=(2, 3)), 1.0, atol=1e-5)


@pytest.mark.parametrize("signature,kwargs,message", [
    ("serving_default", dict(z=tf.zeros([2, 9]), labels=tf.constant([0, 1])), "z: must have shape"),
    ("serving_default", dict(z=tf.zeros([2, 8]), labels=tf.constant([0, 3])), r"labels: must be in \[0, 3\)"),
    ("serving_default", dict(z=tf.zeros([2, 8]), labels=tf.constant([0])), "labels: must have one label"),
    ("serving_default", dict(z=tf.zeros([0, 8]), labels=tf.constant([], tf.int32)), "z: batch must be > 0"),
    ("generate", dict(seed=tf.constant(1, tf.int64), num=tf.constant(-1), truncation=tf.constant(1.0),
                      labels=tf.constant([], tf.int32)), "num: batch must be > 0"),
    ("generate", dict(seed=tf.constant(1, tf.int64), num=tf.constant(5000), truncation=tf.constant(1.0),
                      labels=tf.constant([], tf.int32)), "num: batch must be <= 1024"),
    ("generate", dict(seed=tf.constant(1, tf.int64), num=tf.constant(2), truncation=tf.constant(3.0),
                      labels=tf.constant([], tf.int32)), r"^truncation: must be 0 \(no truncation.*\(0, 2\] "
                                                         r"\(z ~ N\(0, 1\) truncated to \[-t, t\]\)$"),
    ("generate", dict(seed=tf.constant(1, tf.int64), num=tf.constant(2), truncation=tf.constant(np.nan),
                      labels=tf.constant([], tf.int32)), r"^truncation: must be 0"),
    # Another rank than the signature's is named with the shape it takes, not TF's slice error.
    ("serving_default", dict(z=tf.zeros([8]), labels=tf.constant([0])), r"^z: must have shape \[batch, 8\]$"),
    ("serving_default", dict(z=tf.zeros([2, 8, 1]), labels=tf.constant([0, 1])), r"^z: must have shape \[batch, 8\]$"),
    ("serving_default", dict(z=tf.zeros([2, 8]), labels=tf.constant([[0], [1]])),
     r"^labels: must have one label per image \(shape \[batch\], int32\)$"),
    ("attention", dict(z=tf.zeros([1, 8]), labels=tf.constant([0]), queries=tf.constant([3, 3])),
     r"^queries: must have shape \[Q, 2\] \(row, col\)$"),
    ("attention", dict(z=tf.zeros([1, 8]), labels=tf.constant([0]), queries=tf.constant([[16, 0]])),
     r"queries: must be in \[0, 16\)"),
    # A request that OOM-killed a 4 GiB server (batch 1024 x 20,000 queries) is refused first.
    ("attention", dict(z=tf.zeros([1024, 8]), labels=tf.zeros([1024], tf.int32),
                       queries=tf.zeros([20000, 2], tf.int32)), "z: the attention signature takes at most 16"),
    ("attention", dict(z=tf.zeros([1, 8]), labels=tf.constant([0]),
                       queries=tf.zeros([65, 2], tf.int32)), "queries: at most 64 query pixels"),
    ("attention", dict(z=tf.zeros([1, 8]), labels=tf.constant([0]),
                       queries=tf.zeros([0, 2], tf.int32)), "queries: at least one"),
])
def test_invalid_inputs_give_invalid_argument(exported, signature, kwargs, message):
    loaded = tf.saved_model.load(exported[1])
    with pytest.raises(tf.errors.InvalidArgumentError) as error:
        loaded.signatures[signature](**kwargs)
    # The whole message, brackets included, as the one line the commands print.
    assert re.search(message, serving.graph_error_message(error.value)), error.value


def test_fresh_process_and_saved_model_cli(exported):
    _, path, _ = exported
    script = (
        "import json, sys, tensorflow as tf\n"
        "m = tf.saved_model.load(sys.argv[1])\n"
        "out = {}\n"
        "out['serving_default'] = m.signatures['serving_default'](z=tf.zeros([2, 8]), labels=tf.constant([0, 1]))['images'].shape.as_list()\n"
        "out['generate'] = m.signatures['generate'](seed=tf.constant(1, tf.int64), num=tf.constant(3), truncation=tf.constant(1.0), labels=tf.constant([], tf.int32))['images'].shape.as_list()\n"
        "out['attention'] = sorted(m.signatures['attention'](z=tf.zeros([1, 8]), labels=tf.constant([1]), queries=tf.constant([[3, 3]])))\n"
        "print(json.dumps(out))\n")
    proc = subprocess.run([sys.executable, "-c", script, path], capture_output=True, text=True,
                          env=ENV, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out == {"serving_default": [2, 16, 16, 3], "generate": [3, 16, 16, 3],
                   "attention": ["attention_attention4", "attention_attention8", "images"]}
    # The saved_model_cli of this Python's environment (a virtualenv need not be activated).
    cli_path = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    cli = subprocess.run([cli_path if os.path.exists(cli_path) else "saved_model_cli", "show", "--dir", path, "--all"], capture_output=True,
                         text=True, env=ENV, timeout=300)
    assert cli.returncode == 0, cli.stderr[-2000:]
    text = cli.stdout
    # A TF Serving client's metadata request learns z_dim: z is [batch, z_dim] in every signature.
    z_inputs = re.findall(r"inputs\['z'\] tensor_info:\s+dtype: DT_FLOAT\s+shape: (\(.*?\))", text)
    assert z_inputs == ["(-1, 8)"] * 2, z_inputs  # serving_default and attention
    labels = re.findall(r"inputs\['labels'\] tensor_info:\s+dtype: DT_INT32\s+shape: (\(.*?\))", text)
    assert labels == ["(-1)"] * 3, labels
    for expected in ("signature_def['serving_default']", "signature_def['generate']",
                     "signature_def['attention']", "dtype: DT_UINT8", "shape: (-1, 16, 16, 3)",
                     "inputs['z']", "inputs['labels']", "inputs['seed']", "dtype: DT_INT64",
                     "inputs['truncation']", "inputs['queries']"):
        assert expected in text, expected


def test_predict_request_protobuf(exported):
    predict_pb2 = pytest.importorskip("tensorflow_serving.apis.predict_pb2")
    loaded = tf.saved_model.load(exported[1])
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "tiny"
    request.model_spec.signature_name = "serving_default"
    request.inputs["z"].CopyFrom(tf.make_tensor_proto(np.zeros((2, 8), np.float32)))
    request.inputs["labels"].CopyFrom(tf.make_tensor_proto(np.array([1, 2], np.int32)))
    # What the model server does: decode the TensorProtos, run the signature, encode.
    wire = predict_pb2.PredictRequest.FromString(request.SerializeToString())
    fn = loaded.signatures[wire.model_spec.signature_name]
    inputs = {k: tf.constant(tf.make_ndarray(v)) for k, v in wire.inputs.items()}
    response = predict_pb2.PredictResponse()
    for key, value in fn(**inputs).items():
        response.outputs[key].CopyFrom(tf.make_tensor_proto(value.numpy()))
    images = tf.make_ndarray(response.outputs["images"])
    assert images.shape == (2, 16, 16, 3) and images.dtype == np.uint8


def test_versions_increase_and_writes_are_atomic(tmp_path, monkeypatch):
    g = _generator()
    first = serving.export_generator(g, str(tmp_path), "m")
    second = serving.export_generator(g, str(tmp_path), "m")
    assert [os.path.basename(first), os.path.basename(second)] == ["1", "2"]
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(first).st_mode & 0o777 == 0o777 & ~umask  # not mkdtemp's private 0700
    stamp = os.path.getmtime(os.path.join(first, "saved_model.pb"))

    def crash(*args, **kwargs):
        raise KeyboardInterrupt("killed while writing")

    monkeypatch.setattr(tf.saved_model, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        serving.export_generator(g, str(tmp_path), "m")
    assert sorted(os.listdir(tmp_path / "m")) == ["1", "2"]  # no half-written version, no temp
    assert os.path.getmtime(os.path.join(first, "saved_model.pb")) == stamp
    loaded = tf.saved_model.load(second)
    assert "attention" in loaded.signatures and int(loaded.z_dim.numpy()) == 8
    with open(os.path.join(second, "assets.extra.json")) as f:
        assert json.load(f)["generator"]["z_dim"] == 8


def test_export_and_generate_commands(tmp_path):
    config = training.TrainConfig.from_flat(preset="dcgan_32", base_channels=8, z_dim=16, batch_size=8,
                                  steps=2, log_every=1, sample_every=2, checkpoint_every=2,
                                  conditional=True, ema_decay=0.9, export=False,
                                  workdir=str(tmp_path / "run"))
    gan = training.run(config)["gan"]
    # Each command once in a fresh process, as a user runs it.
    proc = run_command("sagan_tf.export", f"--workdir={tmp_path / 'run'}",
                       f"--export_dir={tmp_path / 'sm'}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().endswith(os.path.join("sm", "run", "1"))
    # The export from the checkpoint serves the trained EMA generator.
    z = np.random.default_rng(1).normal(size=(6, 16)).astype("float32")
    labels = np.arange(6, dtype="int32")
    served = tf.saved_model.load(str(tmp_path / "sm" / "run" / "1")).signatures["serving_default"](
        z=tf.constant(z), labels=tf.constant(labels))["images"].numpy().astype(int)
    expected = np.round((np.clip(np.asarray(gan.sampler(z, labels)), -1, 1) + 1) * 127.5)
    assert gan.sampler is gan.ema_generator
    assert np.abs(served - expected).max() <= 1
    grid = tmp_path / "grid.png"
    proc = run_command("sagan_tf.generate", f"--model={tmp_path / 'sm' / 'run'}", "--num=12",
                       f"--out={grid}", "--labels=0,3,9", "--truncation=1.0")
    assert proc.returncode == 0, proc.stderr[-2000:]
    image = tf.io.decode_png(tf.io.read_file(str(grid)))
    assert image.shape == (3 * 33 + 1, 4 * 33 + 1, 3)  # 12 images of 32 px, 1 px gaps
    # The other cases in this process.
    strip = tmp_path / "lerp.png"
    proc = run_main("sagan_tf.generate", f"--model={tmp_path / 'sm' / 'run' / '1'}",
                    "--interpolate=5", "--rows=2", f"--out={strip}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert tf.io.decode_png(tf.io.read_file(str(strip))).shape == (2 * 33 + 1, 5 * 33 + 1, 3)

    # Bad input: one line, non-zero exit.
    (tmp_path / "empty_run").mkdir()
    for run, module, args, message in [
        (run_command, "sagan_tf.export", [f"--workdir={tmp_path / 'empty_run'}"],
         "is not a training run"),
        (run_main, "sagan_tf.generate", [f"--model={tmp_path / 'empty_run'}"], "no SavedModel under"),
        (run_main, "sagan_tf.generate",
         [f"--model={tmp_path / 'sm' / 'run'}", "--out=/nonexistent/dir/x.png"],
         "cannot write /nonexistent/dir/x.png"),
        (run_command, "sagan_tf.generate", [f"--model={tmp_path / 'sm' / 'run'}", "--labels=12"],
         r"^error: labels: must be in \[0, 10\)$"),
        (run_main, "sagan_tf.generate", [f"--model={tmp_path / 'sm' / 'run'}", "--labels=a,b"],
         "--labels must be comma-separated integers; got 'a'"),
        (run_main, "sagan_tf.generate", [f"--model={tmp_path / 'sm' / 'run'}", f"--out={tmp_path}/x.jpg"],
         "--out must be a .png file path"),
        *[(run_main, "sagan_tf.generate", [f"--model={tmp_path / 'sm' / 'run'}", mode,
                                           f"--truncation={t}"],
           rf"--truncation must be 0 \(no truncation.* or in \(0, 2\] .*; got {float(t)}$")
          for mode in ("--interpolate=4", "--attention=2", "--num=4") for t in ("-1", "nan", "2.5")],
        (run_main, "sagan_tf.export", [f"--workdir={tmp_path / 'run'}", "--name=../../x",
                                       f"--export_dir={tmp_path / 'sm'}"],
         "must be a plain directory name"),
    ]:
        proc = run(module, *args)
        assert proc.returncode != 0
        last = proc.stderr.strip().splitlines()[-1]
        assert last.startswith("error:") and re.search(message, last), last
        assert "{{" not in last  # no function-node prefix from the graph
    # Truncation 0 (none) and a tiny one draw images at once in every mode (no redraw loop).
    for mode in ("--interpolate=4", "--attention=2", "--num=4"):
        for t in ("0", "1e-30"):
            out = tmp_path / f"t{t}{mode[2:6]}.png"
            proc = run_main("sagan_tf.generate", f"--model={tmp_path / 'sm' / 'run'}", mode,
                            "--rows=2", f"--truncation={t}", f"--out={out}")
            assert proc.returncode == 0 and out.exists(), proc.stderr[-2000:]
    # Out-of-range numbers are refused by the option's bounds (no int32 wrap-around).
    proc = run_main("sagan_tf.generate", f"--model={tmp_path / 'sm' / 'run'}", "--num=4294967300")
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == "error: --num must be <= 1024; got 4294967300"


def test_truncated_latents_stay_inside_the_truncation():
    for bad in (-1.0, float("nan"), 2.5, float("inf")):
        with pytest.raises(sampling.GenerateError, match="must be 0 .* or in"):
            sampling.truncated_normal(np.random.default_rng(0), (4,), bad)
    z = sampling.truncated_normal(np.random.default_rng(0), (500, 16), 0.5)
    assert np.abs(z).max() <= 0.5 and z.std() > 0.2
    # The inverse CDF: N(0, 1) truncated at 2 has std 0.880; truncation 0 is none.
    z = sampling.truncated_normal(np.random.default_rng(0), (20000,), 2.0)
    assert np.abs(z).max() <= 2.0 and abs(z.std() - 0.880) < 0.01
    z = sampling.truncated_normal(np.random.default_rng(0), (20000,), 0.0)
    assert abs(z.std() - 1.0) < 0.02 and np.abs(z).max() > 3.0
    tiny = sampling.truncated_normal(np.random.default_rng(0), (1000,), 1e-30)
    assert np.abs(tiny).max() <= 1e-30
    assert serving.graph_error_message(
        tf.errors.InvalidArgumentError(None, None, "{{function_node __inference_x}} assertion "
                                       "failed: [z: must be finite] [Condition x]")) == \
        "z: must be finite"
    # A message holding brackets is not cut at the first one.
    assert serving.graph_error_message(tf.errors.InvalidArgumentError(
        None, None, "assertion failed: [truncation: must be in (0, 2] (t)] [Condition x >= y] "
        "[x = ] [nan]\n\t [[{{node a}}]]")) == "truncation: must be in (0, 2] (t)"


def test_concurrent_exports_take_distinct_versions_and_stale_temporaries_go(tmp_path,
                                                                           monkeypatch):
    g = _generator()
    model_dir = tmp_path / "m"
    model_dir.mkdir()
    stale = model_dir / ".tmp-killed"
    stale.mkdir()
    os.utime(stale, (0, 0))  # old: a killed export's leftover
    fresh = model_dir / ".tmp-running"
    fresh.mkdir()  # young: may be an export running now, kept
    # Named by a process of this machine: kept while it runs, removed at once when it is gone.
    import socket

    dead_pid = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True).stdout.strip()
    killed = model_dir / f".tmp-{dead_pid}@{socket.gethostname()}-abc_12"
    killed.mkdir()
    alive = model_dir / f".tmp-{os.getppid()}@{socket.gethostname()}-abc_12"
    alive.mkdir()
    elsewhere = model_dir / f".tmp-{dead_pid}@another-host-abc_12"
    elsewhere.mkdir()
    real_next = serving.next_version
    calls = []

    def racing_next_version(path):
        # The first time, another export claims our number between our choice and rename.
        version = real_next(path)
        if not calls:
            calls.append(version)
            (model_dir / str(version)).mkdir()
            (model_dir / str(version) / "saved_model.pb").write_bytes(b"the other export")
        return version

    monkeypatch.setattr(serving, "next_version", racing_next_version)
    path = serving.export_generator(g, str(tmp_path), "m")
    assert os.path.basename(path) == "2"
    assert (model_dir / "1" / "saved_model.pb").read_bytes() == b"the other export"
    assert not stale.exists() and not killed.exists()
    assert fresh.exists() and alive.exists() and elsewhere.exists()
    assert sorted(n for n in os.listdir(model_dir) if n.startswith(".tmp-")) == sorted(
        [fresh.name, alive.name, elsewhere.name])


def test_an_abandoned_or_failed_export_leaves_nothing(tmp_path, monkeypatch):
    g = _generator()
    with pytest.raises(serving.ExportAbandoned):
        serving.export_generator(g, str(tmp_path), "new", should_stop=lambda: True)
    assert os.listdir(tmp_path) == []  # not even the model directory it created
    first = serving.export_generator(g, str(tmp_path), "m")
    # A TensorFlow write error (a full disk in SaveV2) is one line; version 1 is intact.
    def full_disk(*args, **kwargs):
        raise tf.errors.ResourceExhaustedError(
            None, None, "{{function_node __inference_save_fn_1}} .../variables.data-00000; No "
                        "space left on device [Op:SaveV2]")

    monkeypatch.setattr(tf.saved_model, "save", full_disk)
    with pytest.raises(serving.ExportError) as error:
        serving.export_generator(g, str(tmp_path), "m")
    message = str(error.value)
    assert "\n" not in message and "No space left on device" in message and "{{" not in message
    assert message.startswith(f"cannot write the SavedModel under {tmp_path / 'm'}: ")
    assert sorted(os.listdir(tmp_path / "m")) == ["1"] and os.path.basename(first) == "1"
    with pytest.raises(serving.ExportError):
        serving.export_generator(g, str(tmp_path), "other")
    assert sorted(os.listdir(tmp_path)) == ["m"]


def test_truncated_savedmodel_variables_give_one_line(tmp_path):
    path = serving.export_generator(_generator(), str(tmp_path), "m")
    variables = os.path.join(path, "variables", "variables.data-00000-of-00001")
    with open(variables, "r+b") as f:
        f.truncate(16)
    for module in ("sagan_tf.generate", "sagan_tf.evaluate"):
        proc = run_main(module, f"--model={path}", f"--out={tmp_path / 'x.png'}") \
            if module == "sagan_tf.generate" else run_main(module, f"--model={path}", "--num_samples=20")
        assert proc.returncode != 0
        last = proc.stderr.strip().splitlines()[-1]
        assert last.startswith(f"error: cannot load the SavedModel at {path}"), last
