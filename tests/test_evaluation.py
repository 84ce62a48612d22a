import json
import os

import numpy as np
import pytest
import tensorflow as tf

from sagan_tf import backbones, evaluation, metrics, serving
from sagan_tf import data
from sagan_tf.models import DCGANGenerator
from tests.commands import run_command, run_main
from tests.stand_ins import B, P, W, shapes_folder, stand_in_graph as _stand_in_graph


def test_inception_graph_loading_and_preprocessing(tmp_path):
    backbone = backbones.InceptionGraph(_stand_in_graph(str(tmp_path / "g.pb")))
    assert backbone.feature_dim == 2048 and backbone.comparable_with_papers
    # Per-channel constant images in [-1, 1], 32 px, 4 of them (batch > 1, unlike the raw graph).
    colors = np.array([[-1, 0, 1], [0.5, 0.5, 0.5], [1, 1, 1], [-1, -1, -1]], np.float32)
    images = np.ones((4, 32, 32, 3), np.float32) * colors[:, None, None, :]
    features, logits = backbone(images)
    pixel = (colors + 1) * 127.5  # the [0, 255] range the graph expects
    expected = ((pixel - 128) / 128) @ P + 1.0  # + height/299 with height resized to 299
    # float32 means over 299x299 pixels carry ~1e-3 round-off; a wrong range or size is off by far more.
    np.testing.assert_allclose(features, expected, atol=1e-2)
    np.testing.assert_allclose(logits, expected @ W + B, atol=1e-2)
    gray, _ = backbone(images[:, :, :, :1])
    np.testing.assert_allclose(gray[0], ((np.full(3, 0.0) - 128) / 128) @ P + 1.0, atol=1e-2)


def test_inception_graph_errors(tmp_path):
    with pytest.raises(backbones.BackboneError, match="not found"):
        backbones.InceptionGraph(str(tmp_path / "missing.pb"))
    bad = _stand_in_graph(str(tmp_path / "bad.pb"), names=("input", "pool_3", "w", "softmax/biases"))
    with pytest.raises(backbones.BackboneError, match=r"lacks the tensors \['ExpandDims:0', 'softmax/weights:0'\]"):
        backbones.InceptionGraph(bad)
    (tmp_path / "junk.pb").write_bytes(b"not a protobuf at all \xff\xfe")
    with pytest.raises(backbones.BackboneError, match="not a GraphDef"):
        backbones.InceptionGraph(str(tmp_path / "junk.pb"))


def _archive(path, graph_path, member="inception/classify_image_graph_def.pb"):
    import tarfile

    with tarfile.open(path, "w:gz") as tar:
        tar.add(graph_path, arcname=member)
    return path


@pytest.fixture
def http_server(tmp_path):
    """Serves tmp_path/www on 127.0.0.1; yields (base URL, list of requested paths)."""
    import functools
    import http.server
    import threading

    root = tmp_path / "www"
    root.mkdir()
    requests = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_GET(self):
            requests.append(self.path)
            return super().do_GET()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", requests, root
    server.shutdown()
    server.server_close()


def test_the_inception_graph_is_downloaded_once_checked_and_reused(tmp_path, http_server,
                                                                   monkeypatch):
    from sagan_tf import downloads

    base, requests, www = http_server
    _archive(str(www / "inception.tgz"), _stand_in_graph(str(tmp_path / "g.pb")))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(downloads, "INCEPTION_URL", f"{base}/inception.tgz")
    backbone = backbones.get("inception_graph")  # no path: the download
    cached = tmp_path / "cache" / "sagan_tf" / "inception-2015-12-05" / "classify_image_graph_def.pb"
    assert cached.read_bytes() == (tmp_path / "g.pb").read_bytes()
    assert os.listdir(cached.parent) == [cached.name]  # no temporary file left
    features, _ = backbone(np.zeros((2, 32, 32, 3), np.float32))
    assert features.shape == (2, 2048)
    assert backbones.get("inception_graph").feature_dim == 2048
    assert requests == ["/inception.tgz"]  # the second backbone came from the cache
    # A file:// URL works the same.
    other = downloads.inception_graph_file((www / "inception.tgz").as_uri(),
                                           directory=str(tmp_path / "c2"))
    assert open(other, "rb").read() == cached.read_bytes()


def test_a_wrong_or_truncated_inception_download_is_refused_and_never_cached(tmp_path,
                                                                             http_server):
    from sagan_tf import downloads

    base, _, www = http_server
    good = _archive(str(www / "good.tgz"), _stand_in_graph(str(tmp_path / "g.pb")))
    (www / "truncated.tgz").write_bytes(open(good, "rb").read()[:200])
    _archive(str(www / "wrong.tgz"), _stand_in_graph(
        str(tmp_path / "w.pb"), names=("input", "pool_3", "softmax/weights", "softmax/biases")))
    _archive(str(www / "other.tgz"), str(tmp_path / "g.pb"), member="model.pb")
    cache = tmp_path / "cache"
    for name, message in (("truncated", "not a readable .tgz"),
                          ("wrong", r"not the FID Inception archive: .*lacks the tensors"),
                          ("other", "holds no classify_image_graph_def.pb")):
        with pytest.raises(downloads.DownloadError, match=message):
            downloads.inception_graph_file(f"{base}/{name}.tgz", directory=str(cache))
        assert os.listdir(cache / "inception-2015-12-05") == []
    assert os.path.exists(downloads.inception_graph_file(f"{base}/good.tgz", directory=str(cache)))


def test_offline_the_inception_download_says_what_to_put_where(tmp_path):
    import socket

    from sagan_tf import downloads

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/inception-2015-12-05.tgz"
    with pytest.raises(downloads.DownloadError) as error:
        downloads.inception_graph_file(url, directory=str(tmp_path), timeout=5)
    line = str(error.value)
    assert "\n" not in line and url in line and "--inception_graph=PATH" in line
    assert downloads.inception_graph_path(str(tmp_path)) in line


def test_keras_inception_offline_error_and_plumbing(tmp_path):
    with pytest.raises(backbones.BackboneError, match="cannot load Keras InceptionV3"):
        backbones.KerasInceptionV3(str(tmp_path / "no_weights.h5"))
    net = backbones.KerasInceptionV3(weights=None)
    features, logits = net(np.zeros((2, 32, 32, 1), np.float32))
    assert features.shape == (2, 2048) and logits.shape == (2, 1000)
    assert not net.comparable_with_papers and "NOT comparable" in net.label


@pytest.fixture(scope="module")
def classifier():
    return backbones.DatasetClassifier()  # cached under the session's XDG_CACHE_HOME


def test_mnist_classifier_feature_space(classifier):
    assert classifier.accuracy > 0.9
    train = data.DataSpec("mnist5k", 32, 1, split="train", deterministic=True)
    test = data.DataSpec("mnist5k", 32, 1, split="test", deterministic=True)

    def stats(batches):
        s = metrics.FeatureStats(128)
        for images, _ in batches:
            s.update(classifier(images)[0])
        return s

    real_test = stats(evaluation.real_batches(test, 100))
    real_train = stats(list(evaluation.real_batches(train, 100))[:5])
    rng = np.random.default_rng(0)
    noise = stats([(rng.uniform(-1, 1, (100, 32, 32, 1)).astype(np.float32), None)
                   for _ in range(5)])
    real_vs_real = metrics.fid(real_test, real_train)
    real_vs_noise = metrics.fid(real_test, noise)
    assert real_vs_noise > 10 * real_vs_real
    # The cache is reused: a second load trains nothing and agrees.
    cached = [f for f in os.listdir(backbones.default_cache_dir()) if f.endswith(".keras")]
    assert len(cached) == 1
    again = backbones.DatasetClassifier()
    assert again.accuracy == classifier.accuracy


def test_class_accuracy_of_real_held_out_digits_is_the_classifier_accuracy(classifier):
    images, labels = data.load_mnist5k("test")
    images = images.copy()
    images = np.pad(images, ((0, 0), (2, 2), (2, 2), (0, 0))).astype(np.float32) / 127.5 - 1

    def real_digits(n, offset):
        return images[offset:offset + n], labels[offset:offset + n]

    spec = data.DataSpec("mnist5k", 32, 1, split="test", deterministic=True)
    real = evaluation.real_stats(classifier, spec, 500)
    result = evaluation.evaluate(real_digits, classifier, real, num_samples=500, kid_subsets=5,
                               kid_subset_size=100)
    assert result["class_accuracy"] == pytest.approx(classifier.accuracy, abs=1e-4)
    # The same digits: FID ~0, every sample inside the real manifold and vice versa.
    assert result["fid"] < 1e-3 and result["precision"] == result["recall"] == 1.0


def test_range_check(classifier):
    with pytest.raises(backbones.BackboneError, match=r"must be in \[-1, 1\]"):
        classifier(np.full((1, 32, 32, 1), 255.0, np.float32))


def test_evaluate_end_to_end_on_a_tiny_exported_model(classifier, tmp_path):
    g = DCGANGenerator(32, z_dim=8, base_channels=8, attention_resolutions=(16,), num_classes=10)
    g.build()
    path = serving.export_generator(g, str(tmp_path / "sm"), "tiny")
    sample, size = evaluation.savedmodel_sampler(path, seed=1)
    assert size == 32
    spec = data.DataSpec("mnist5k", 32, 3, split="test", deterministic=True)
    real = evaluation.real_stats(classifier, spec, 120)
    result = evaluation.evaluate(sample, classifier, real, num_samples=120, kid_subsets=5,
                               kid_subset_size=100)
    assert result["num_fake"] == 120 and result["num_real"] == 120
    assert result["fid"] > 0 and np.isfinite(result["kid"]) and result["is"] >= 1.0
    assert len(result["warnings"]) == 2 and "rank-deficient" in result["warnings"][0]

    proc = run_command("sagan_tf.evaluate", f"--model={tmp_path / 'sm' / 'tiny'}",
                       "--num_samples=200", "--batch_size=50")
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["backbone"] == "classifier" and out["comparable_with_papers"] is False
    assert "classifier FID" in out["label"] and out["num_real"] == 200
    assert {"fid", "kid", "kid_std", "is", "is_std", "precision", "recall", "class_accuracy",
            "model", "split"} <= set(out)
    assert 0 <= out["precision"] <= 1 and 0 <= out["recall"] <= 1
    assert 0 <= out["class_accuracy"] <= 1  # the tiny model is conditional
    bad = run_main("sagan_tf.evaluate", f"--model={tmp_path / 'sm' / 'tiny'}",
                   "--backbone=inception_graph", f"--inception_graph={tmp_path / 'no.pb'}")
    assert bad.returncode != 0 and bad.stderr.strip().splitlines()[-1].startswith("error: Inception graph file")


def test_evaluate_refuses_the_classifier_for_data_it_cannot_learn_offline(tmp_path):
    proc = run_command("sagan_tf.evaluate", f"--model={tmp_path}", "--dataset=cifar10",
                       timeout=300)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "error: the classifier backbone is trained on the dataset it scores and reads mnist5k "
        "and labelled folders (folder:PATH with class sub-folders) only, not cifar10; use one "
        "of ['inception_graph', 'keras_inception'] (inception_graph for FIDs comparable with "
        "papers)"]


def test_evaluate_on_a_workdir_reproduces_the_runs_last_evaluation(tmp_path):
    from sagan_tf import config, training

    run = tmp_path / "run"
    result = training.run(config.TrainConfig.from_flat(
        preset="dcgan_32", base_channels=8, z_dim=16, batch_size=8, steps=4, conditional=True,
        ema_decay=0.9, eval_every=4, eval_samples=60, log_every=2, sample_every=4,
        checkpoint_every=4, workdir=str(run), export=False, seed=3))
    ours = result["logs"]["evaluation"]
    proc = run_main("sagan_tf.evaluate", f"--workdir={run}", "--num_samples=60")
    assert proc.returncode == 0, proc.stderr[-2000:]
    again = json.loads(proc.stdout.strip().splitlines()[-1])
    assert again["model"] == f"{run} (step 4)" and again["num_real"] == ours["num_real"]
    for key in ("fid", "kid", "is", "precision", "recall", "class_accuracy"):
        np.testing.assert_allclose(again[key], ours[key], rtol=1e-4, atol=1e-6, err_msg=key)

    # The run's export, scored with --model, draws the same z and labels through
    # serving_default: the same numbers up to the uint8 rounding of its images.
    path = serving.export_workdir(str(run), str(tmp_path / "sm"), "run")
    proc = run_main("sagan_tf.evaluate", f"--model={path}", "--num_samples=60", "--seed=3")
    assert proc.returncode == 0, proc.stderr[-2000:]
    served = json.loads(proc.stdout.strip().splitlines()[-1])
    print({key: (served[key], ours[key]) for key in ("fid", "kid", "precision", "recall")})
    assert served["class_accuracy"] == ours["class_accuracy"]
    np.testing.assert_allclose(served["fid"], ours["fid"], rtol=0.01)
    np.testing.assert_allclose(served["kid"], ours["kid"], rtol=0.05, atol=1e-3)
    # An explicit truncation samples the generate signature instead: other z.
    proc = run_main("sagan_tf.evaluate", f"--model={path}", "--num_samples=60", "--seed=3",
                    "--truncation=0.5")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1])["fid"] != served["fid"]
    proc = run_main("sagan_tf.evaluate", f"--workdir={run}", "--truncation=1")
    assert proc.returncode == 1 and "--truncation applies to --model only" in proc.stderr


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    root = shapes_folder(tmp_path_factory.mktemp("judge") / "shapes")
    spec = data.DataSpec(f"folder:{root}", 32, 3)
    cache = str(tmp_path_factory.mktemp("judge_cache"))
    judge = backbones.DatasetClassifier(spec, cache)
    return root, spec, cache, judge


def test_folder_classifier_trains_on_the_folder_and_separates_real_from_noise(shapes):
    root, spec, _, judge = shapes
    assert judge.class_names == ("bars", "discs", "squares")
    assert judge.num_heldout == 15 and judge.accuracy >= 0.9  # 5 of 25 per class held out
    images, labels, _ = data.load_images(data.DataSpec(spec.dataset, 32, 3, folder_labels=True))
    images = images.astype(np.float32) / 127.5 - 1
    train, heldout = backbones.heldout_split(labels, judge.HELDOUT, judge.SPLIT_SEED)

    def stats(x):
        s = metrics.FeatureStats(judge.feature_dim)
        s.update(judge(x)[0])
        return s

    noise = np.random.default_rng(1).uniform(-1, 1, (60, 32, 32, 3)).astype(np.float32)
    real_vs_real = metrics.fid(stats(images[heldout]), stats(images[train]))
    real_vs_noise = metrics.fid(stats(noise), stats(images[train]))
    # 15 held-out images for 128-d features: the floor itself is mostly small-sample bias.
    assert real_vs_noise > 5 * real_vs_real
    # Held-out real images as "samples": their class accuracy is the judge's own.
    result = evaluation.evaluate(lambda n, o: (images[heldout][o:o + n], labels[heldout][o:o + n]),
                                 judge, stats(images[train]), num_samples=15, kid_subsets=2,
                                 kid_subset_size=10)
    assert result["class_accuracy"] == pytest.approx(judge.accuracy, abs=1e-4)
    assert result["real_class_accuracy"] == judge.accuracy
    assert "folder shapes" in result["label"]


def test_folder_classifier_is_cached_by_the_folder_content(shapes, monkeypatch, tmp_path):
    import shutil

    from PIL import Image

    root, spec, cache, judge = shapes
    root = shutil.copytree(root, tmp_path / "copy")  # the same content elsewhere: the same key
    spec = data.DataSpec(f"folder:{root}", 32, 3)

    def no_training(*args, **kwargs):
        raise AssertionError("trained again")

    monkeypatch.setattr(backbones, "_fit", no_training)
    again = backbones.DatasetClassifier(spec, cache)
    assert again.accuracy == judge.accuracy
    images = np.random.default_rng(2).uniform(-1, 1, (4, 32, 32, 3)).astype(np.float32)
    np.testing.assert_allclose(again(images)[0], judge(images)[0], atol=1e-5)
    # Another background composites other pixels: another classifier.
    with pytest.raises(AssertionError, match="trained again"):
        backbones.DatasetClassifier(data.DataSpec(spec.dataset, 32, 3, background=(0, 0, 0)),
                                    cache)
    # A changed image: another classifier.
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(root / "discs" / "0.png")
    data._FOLDER_CACHE.clear()
    with pytest.raises(AssertionError, match="trained again"):
        backbones.DatasetClassifier(spec, cache)


def test_folder_classifier_refuses_a_folder_without_classes_in_one_line(tmp_path):
    from PIL import Image

    for folder in ("flat", "one/only"):
        (tmp_path / folder).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)).save(tmp_path / folder / f"{i}.png")
    with pytest.raises(backbones.BackboneError, match="class sub-folders: .* has no class "
                                                      "sub-folders .*use inception_graph"):
        backbones.DatasetClassifier(data.DataSpec(f"folder:{tmp_path / 'flat'}", 32, 3))
    with pytest.raises(backbones.BackboneError, match="one class sub-folder \\(only\\)"):
        backbones.DatasetClassifier(data.DataSpec(f"folder:{tmp_path / 'one'}", 32, 3))
    with pytest.raises(backbones.BackboneError, match="not cifar10"):
        backbones.check_fits("classifier", "cifar10")
    backbones.check_fits("classifier", f"folder:{tmp_path}")


def test_a_one_class_folder_is_scored_by_the_classifier_of_the_folder_it_came_from(shapes,
                                                                                   tmp_path):
    import shutil

    root, spec, cache, judge = shapes
    shutil.copytree(root / "discs", tmp_path / "discs_only" / "discs")
    scored = data.DataSpec(f"folder:{tmp_path / 'discs_only'}", 32, 3)
    borrowed = backbones.get("classifier", data_spec=scored, cache_dir=cache,
                             classifier_dataset=spec.dataset)
    assert borrowed.class_names == judge.class_names and not borrowed.classifies_dataset
    real = evaluation.real_stats(borrowed, scored, 25)
    images, _, _ = data.load_images(scored)
    result = evaluation.evaluate(lambda n, o: (images[o:o + n] / 127.5 - 1, np.zeros(n, int)),
                                 borrowed, real, num_samples=25, kid_subsets=2, kid_subset_size=10)
    assert result["class_accuracy"] is None and result["fid"] < 1e-3
    assert result["mirror_gap"] == result["real_mirror_gap"] > 0
    with pytest.raises(backbones.BackboneError, match="not cifar10"):
        backbones.get("classifier", data_spec=scored, classifier_dataset="cifar10")


def test_the_real_statistics_read_every_image_of_a_folder(shapes):
    root, spec, _, judge = shapes
    assert evaluation.real_stats(judge, spec, 1000, batch_size=50).n == 75  # 50 + 25
