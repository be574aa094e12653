"""Anomaly scores: PyOD's detector API on an autoencoder, `aelab score`, and its refusals."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import run_cli
from PIL import Image

import aelab
from aelab.errors import AelabError


def noise_images(n: int) -> np.ndarray:
    return (np.random.default_rng(0).random((n, 28, 28)) * 255).astype(np.uint8)


@pytest.fixture(scope="module")
def digits(small_data) -> np.ndarray:
    return np.load(small_data / "digits.npz")["x"]


@pytest.fixture(scope="module")
def dense_run(small_data, tmp_path_factory):
    """A dense autoencoder trained long enough (90 steps) to reconstruct digits far better than noise."""
    out = tmp_path_factory.mktemp("anomaly") / "dense"
    assert (
        run_cli(
            "train",
            "dense",
            "--data-dir",
            small_data,
            "--epochs",
            "3",
            "--batch-size",
            "32",
            "--out",
            out,
            "--no-progress",
        )
        == 0
    )
    return out


def test_detector_follows_pyod_conventions(digits, tmp_path):
    detector = aelab.AnomalyDetector(
        "dense", contamination=0.1, out=tmp_path / "run", method="reconstruction", epochs=3, batch_size=32
    )
    with pytest.raises(AelabError, match="not fitted"):
        detector.predict(digits[:2])
    assert detector.fit(digits) is detector
    scores = detector.decision_scores_
    assert scores.shape == (len(digits),) and (scores > 0).all()
    assert detector.threshold_ == pytest.approx(np.quantile(scores, 0.9))
    assert detector.labels_.mean() == pytest.approx(0.1, abs=0.01)
    assert np.allclose(detector.decision_function(digits[:5]), scores[:5], rtol=1e-5)
    noise = noise_images(4)
    assert detector.predict(noise).tolist() == [1, 1, 1, 1]  # noise is nothing like digits
    proba = detector.predict_proba(np.concatenate([digits[:3], noise]))
    assert proba.shape == (7, 2) and np.allclose(proba.sum(1), 1)
    assert proba[3:, 1].min() > proba[:3, 1].max()
    maps = detector.error_maps(noise)
    assert maps.shape == (4, 28, 28)
    # the default score: each pixel's error over its mean on the training images, averaged
    normal = detector.error_maps(digits).mean(axis=0)
    assert np.allclose(detector.scorer_.error.pixel_errors.numpy(), normal, rtol=1e-5)
    assert np.allclose((maps / (normal + 1e-4)).mean(axis=(1, 2)), detector.decision_function(noise), rtol=1e-4)
    plain = aelab.AnomalyDetector("dense", score="mse", method="reconstruction")
    plain.run = detector.run  # a run given by hand: the plain error needs nothing fitted
    assert np.allclose(maps.mean(axis=(1, 2)), plain.decision_function(noise), rtol=1e-5)
    with pytest.raises(AelabError, match="unknown score"):
        aelab.AnomalyDetector("dense", score="max")
    assert (tmp_path / "run" / "model.safetensors").is_file()  # out keeps the run
    # the benchmark's best detector is the default: the combined method on seed 2's dense
    assert aelab.AnomalyDetector().model == "dense" and aelab.AnomalyDetector().method == "combined"


def test_detector_from_a_run_sets_its_threshold_on_validation_images(dense_run):
    detector = aelab.AnomalyDetector.from_run(dense_run, contamination=0.05, method="reconstruction")
    assert len(detector.decision_scores_) == 32  # 10% of the 320 training images (400 less the test 20%)
    assert detector.threshold_ == pytest.approx(np.quantile(detector.decision_scores_, 0.95))
    assert detector.predict(noise_images(3)).tolist() == [1, 1, 1]
    for bad in (0, 0.6, "0.1"):
        with pytest.raises(AelabError, match="contamination"):
            aelab.AnomalyDetector.from_run(dense_run, contamination=bad)


def test_score_command_writes_a_table_and_the_error_maps(dense_run, digits, tmp_path, capsys):
    files = []
    for i, image in enumerate([*digits[:3], *noise_images(2)]):
        files.append(tmp_path / f"{'digit' if i < 3 else 'noise'}{i}.png")
        Image.fromarray(image).save(files[-1])
    table, maps = tmp_path / "scores.csv", tmp_path / "maps"
    assert run_cli("score", dense_run, *files, "--out", table, "--maps", maps, "--worst", "3") == 0
    printed = capsys.readouterr().out
    rows = [line.split(",") for line in table.read_text().splitlines()[1:]]
    assert [r[0] for r in rows] == [str(f) for f in files]
    assert [r[2] for r in rows][3:] == ["1", "1"]
    assert "above the threshold" in printed and "validation images" in printed
    assert (maps / "worst.png").read_bytes()[:4] == b"\x89PNG"
    # a given threshold; the table is written again with --overwrite (never without: it may be the user's by now)
    assert run_cli("score", dense_run, *files, "--threshold", "0", "--out", table, "--maps", maps) == 2
    assert "scores.csv exists" in capsys.readouterr().err
    # (the plain error: a threshold of 0 flags every image; the combined default standardises its parts)
    assert (
        run_cli(
            "score",
            dense_run,
            *files,
            "--threshold",
            "0",
            "--out",
            table,
            "--maps",
            maps,
            "--overwrite",
            "--method",
            "reconstruction",
        )
        == 0
    )
    assert all(line.endswith(",1") for line in table.read_text().splitlines()[1:])
    # the reconstruction error alone, as the plain mean squared error, against a given threshold: none of the run's data
    assert (
        run_cli(
            "score",
            dense_run,
            *files,
            "--score",
            "mse",
            "--method",
            "reconstruction",
            "--threshold",
            "0.1",
            "--out",
            table,
            "--maps",
            maps,
            "--overwrite",
        )
        == 0
    )
    plain = [line.split(",") for line in table.read_text().splitlines()[1:]]
    assert all(float(s) < 1 for _, s, _ in plain) and [f for _, _, f in plain][3:] == ["1", "1"]
    # the other methods: the same scores as the API's detector (at one fixed thread count: the
    # transformations network trains again at each call, and other counts sum in another order)
    for method in ("neighbours", "combined"):
        assert (
            run_cli(
                "score",
                dense_run,
                *files,
                "--method",
                method,
                "--out",
                table,
                "--maps",
                maps,
                "--overwrite",
                "--threads",
                "1",
            )
            == 0
        )
        near = [float(line.split(",")[1]) for line in table.read_text().splitlines()[1:]]
        with aelab.fixed_threads(1):
            expected = aelab.AnomalyDetector.from_run(dense_run, method=method).decision_function(
                np.stack([np.asarray(Image.open(f)) for f in files])
            )
        assert np.allclose(near, expected, rtol=1e-4) and min(near[3:]) > max(near[:3])


def test_bad_score_input_is_one_line_and_writes_nothing(trained_run, tmp_path, capsys):
    image = tmp_path / "ok.png"
    Image.fromarray(noise_images(1)[0]).save(image)
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    foreign = tmp_path / "theirs.csv"
    foreign.write_text("a,b\n1,2\n")
    like_ours = tmp_path / "like-ours.csv"  # a table with aelab's header is still the user's file
    like_ours.write_text("file,score,outlier\nmine.png,1,0\n")
    maps = tmp_path / "maps"
    cases = [
        ((trained_run, text, "--maps", maps), "notes.txt"),
        ((trained_run, tmp_path / "missing.png", "--maps", maps), "missing.png"),
        ((trained_run, image, "--out", foreign, "--maps", maps), "theirs.csv exists"),
        ((trained_run, image, "--out", like_ours, "--maps", maps), "like-ours.csv exists"),
        ((trained_run, image, "--out", tmp_path / "s.txt", "--maps", maps), ".csv"),
        ((trained_run, image, "--contamination", "0.9", "--maps", maps), "contamination"),
        ((trained_run, image, "--threshold", "-1", "--maps", maps), "--threshold"),
        ((tmp_path / "norun", image, "--maps", maps), "does not exist"),
    ]
    for args, why in cases:
        assert run_cli("score", *args) == 2
        err = capsys.readouterr().err.strip()
        assert why in err and len(err.splitlines()) == 1, err
    assert foreign.read_text() == "a,b\n1,2\n" and like_ours.read_text() == "file,score,outlier\nmine.png,1,0\n"
    assert not maps.exists() and not (tmp_path / "s.txt").exists()


def test_models_that_cannot_score_say_so(tmp_path):
    from aelab import Run, create_model
    from aelab.runs import write_json

    model = create_model("gan")
    run = Run(tmp_path / "gan")
    write_json(run.config_path, {"model": "gan", "params": model.params, "train": {}})
    run.save_weights(model)
    with pytest.raises(AelabError, match="need an autoencoder"):
        aelab.AnomalyDetector.from_run(run)


# ----------------------------------------------------------------------------- PyOD's whole API


def test_a_detector_clones_and_takes_new_parameters(dense_run):
    from sklearn.base import clone

    detector = aelab.AnomalyDetector("dense", contamination=0.05, score="mse", epochs=2, batch_size=32)
    copy = clone(detector)
    assert copy is not detector and copy.get_params() == detector.get_params()
    assert copy.get_params() == {
        "model": "dense",
        "contamination": 0.05,
        "out": None,
        "score": "mse",
        "method": "combined",
        "progress": None,
        "epochs": 2,
        "batch_size": 32,
    }
    assert copy.decision_scores_ is None  # a clone is unfitted
    assert copy.set_params(epochs=4, contamination=0.2) is copy
    assert copy.settings["epochs"] == 4 and copy.contamination == 0.2 and detector.settings["epochs"] == 2
    for bad, why in (({"contamination": 0.9}, "contamination"), ({"score": "max"}, "unknown score")):
        with pytest.raises(AelabError, match=why):
            copy.set_params(**bad)
    fitted = aelab.AnomalyDetector.from_run(dense_run, method="reconstruction")
    assert clone(fitted).model_ is None and "AnomalyDetector(model='dense'" in repr(fitted)


def test_predictions_come_with_confidence_probabilities_and_rejection(dense_run, digits):
    detector = aelab.AnomalyDetector.from_run(dense_run, contamination=0.1, method="reconstruction")
    x = np.concatenate([digits[:20], noise_images(4)])
    labels, confidence = detector.predict(x, return_confidence=True)
    assert labels.shape == confidence.shape == (24,) and set(labels) <= {0, 1}
    assert ((0 <= confidence) & (confidence <= 1)).all()
    assert np.array_equal(confidence, detector.predict_confidence(x))
    # noise scores above every fitted score: as sure as 32 validation scores allow (ExCeeD's p = 33/34)
    n = len(detector.decision_scores_)
    surest = 1 - __import__("scipy").stats.binom.cdf(n - int(n * 0.1), n, (n + 1) / (n + 2))
    assert labels[20:].tolist() == [1] * 4 and np.allclose(confidence[20:], surest) and surest > 0.9
    for method in ("linear", "unify"):
        proba, same = detector.predict_proba(x, method=method, return_confidence=True)
        assert proba.shape == (24, 2) and np.allclose(proba.sum(1), 1) and ((0 <= proba) & (proba <= 1)).all()
        assert np.array_equal(same, confidence) and (proba[20:, 1] >= proba[:20, 1].max()).all()
    with pytest.raises(AelabError, match="unknown method"):
        detector.predict_proba(x, method="softmax")
    # the reject option: -2 where the outlier probability is not within exp(-T) of 0 or 1
    strict = detector.predict_with_rejection(x, T=32)
    loose = detector.predict_with_rejection(x, T=2)
    assert set(strict) <= {-2, 0, 1} and (strict == -2).sum() >= (loose == -2).sum()
    kept = loose != -2
    assert np.array_equal(loose[kept], labels[kept]) and loose[20:].tolist() == [1] * 4
    assert (strict == -2).mean() > 0.5  # PyOD's default T=32 rejects nearly all with 32 fitted scores
    rejected, expected, bound, cost = detector.predict_with_rejection(x, T=2, return_stats=True)
    assert np.array_equal(rejected, loose)
    assert 0 <= expected <= 1 and expected <= bound and cost >= 0
    with pytest.raises(AelabError, match="delta"):
        detector.compute_rejection_stats(delta=1.5)


def test_flat_rows_are_images_when_square(dense_run, digits):
    detector = aelab.AnomalyDetector.from_run(dense_run, method="reconstruction")
    flat = digits[:6].reshape(6, -1)
    assert np.allclose(detector.decision_function(flat), detector.decision_function(digits[:6]))
    with pytest.raises(AelabError, match="not square images"):
        detector.decision_function(np.zeros((2, 100 * 7), dtype=np.uint8))


def test_calibration_without_anomalies_flags_the_contamination_share(dense_run, digits):
    """The rule when the calibration images hold no anomalies: the threshold flags `contamination`
    of them, never everything (a best-F1 threshold has nothing to learn from there)."""
    detector = aelab.AnomalyDetector.from_run(dense_run, contamination=0.05, method="reconstruction")
    normal = digits[:200]
    for labels in (None, np.zeros(200, dtype=int)):
        detector.calibrate(normal, labels)
        assert detector.predict(normal).mean() == pytest.approx(0.05, abs=0.01)
        assert detector.threshold_ == pytest.approx(np.quantile(detector.decision_function(normal), 0.95))
    # both kinds: the threshold with the best F1, here the one that separates noise from digits
    x = np.concatenate([normal, noise_images(10)])
    y = np.r_[np.zeros(200, dtype=int), np.ones(10, dtype=int)]
    detector.calibrate(x, y)
    assert detector.predict(x).tolist() == y.tolist()
    assert len(detector.decision_scores_) == 200  # the normal images' scores, for the confidence estimates
    with pytest.raises(AelabError, match="all anomalies"):
        detector.calibrate(noise_images(3), [1, 1, 1])
    with pytest.raises(AelabError, match="calibration labels"):
        detector.calibrate(normal[:3], [0, 2, 1])


def test_a_saved_detector_loads_to_the_same_scores_without_its_run(dense_run, digits, tmp_path):
    import shutil

    detector = aelab.AnomalyDetector.from_run(dense_run, contamination=0.1, method="reconstruction")
    copied = tmp_path / "run"
    shutil.copytree(dense_run, copied)
    moved = aelab.AnomalyDetector.from_run(copied, contamination=0.1, method="reconstruction")
    path = moved.save(tmp_path / "detector.safetensors")
    shutil.rmtree(copied)  # the file stands alone
    loaded = aelab.AnomalyDetector.load(path, device="cpu")
    x = np.concatenate([digits[:10], noise_images(3)])
    assert np.allclose(loaded.decision_function(x), detector.decision_function(x), rtol=1e-6)
    assert loaded.threshold_ == detector.threshold_ and loaded.contamination == 0.1
    assert np.array_equal(loaded.predict(x), detector.predict(x))
    assert np.array_equal(loaded.decision_scores_, detector.decision_scores_)
    with pytest.raises(AelabError, match="exists"):
        loaded.save(path)
    before = path.read_bytes()
    with pytest.raises(AelabError, match="exists"):
        loaded.save(path)
    assert path.read_bytes() == before
    damaged = tmp_path / "damaged.safetensors"
    damaged.write_bytes(before[:100])
    not_ours = tmp_path / "weights.safetensors"
    shutil.copy(dense_run / "model.safetensors", not_ours)
    for bad, why in (
        (damaged, "damaged"),
        (not_ours, "not an aelab detector file"),
        (tmp_path / "none.safetensors", "does not exist"),
    ):
        with pytest.raises(AelabError, match=why):
            aelab.AnomalyDetector.load(bad)


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs a CUDA device")
def test_a_detector_saved_on_a_gpu_loads_on_the_cpu(dense_run, digits, tmp_path):
    gpu = aelab.AnomalyDetector.load(
        aelab.AnomalyDetector.from_run(dense_run, method="reconstruction").save(tmp_path / "d.safetensors"),
        device="cuda",
    )
    path = gpu.save(tmp_path / "from-gpu.safetensors")
    cpu = aelab.AnomalyDetector.load(path)
    assert np.allclose(cpu.decision_function(digits[:8]), gpu.decision_function(digits[:8]), rtol=1e-4)


def test_the_detector_exports_to_onnx_with_its_threshold(dense_run, digits, tmp_path, capsys):
    ort = pytest.importorskip("onnxruntime")
    import onnx

    out = tmp_path / "detector.onnx"
    assert (
        run_cli(
            "export",
            dense_run,
            "--part",
            "detector",
            "--contamination",
            "0.05",
            "--method",
            "reconstruction",
            "--out",
            out,
        )
        == 0
    )
    assert "detector" in capsys.readouterr().out
    detector = aelab.AnomalyDetector.from_run(dense_run, contamination=0.05, method="reconstruction")
    x = np.concatenate([digits[:16], noise_images(4)]).astype(np.float32)[:, None] / 255
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    scores = session.run(None, {"images": x})[0]
    assert scores.shape == (20,)
    assert np.allclose(scores, detector.decision_function(x), rtol=1e-4, atol=1e-6)
    metadata = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert float(metadata["aelab.threshold"]) == detector.threshold_
    assert metadata["aelab.score"] == "normalised" and metadata["aelab.contamination"] == "0.05"
    flagged = scores > float(metadata["aelab.threshold"])
    assert flagged.tolist() == detector.predict(x).astype(bool).tolist()
    own = aelab.export(detector, tmp_path / "own.onnx", part="detector")  # a fitted detector exports itself
    assert np.allclose(
        ort.InferenceSession(str(own), providers=["CPUExecutionProvider"]).run(None, {"images": x})[0],
        scores,
        rtol=1e-6,
    )
    with pytest.raises(AelabError, match="part 'detector'"):
        aelab.export(detector, tmp_path / "enc.onnx", part="encoder")
    before = out.read_bytes()
    assert run_cli("export", dense_run, "--part", "detector", "--out", out) == 2  # exists: refused
    assert out.read_bytes() == before
    assert (
        run_cli("export", dense_run, "--part", "detector", "--method", "neighbours", "--out", tmp_path / "n.onnx") == 0
    )
    metadata = {p.key: p.value for p in onnx.load(str(tmp_path / "n.onnx")).metadata_props}
    assert metadata["aelab.method"] == "neighbours"
    assert (
        run_cli(
            "export",
            dense_run,
            "--part",
            "detector",
            "--score",
            "mse",
            "--method",
            "reconstruction",
            "--out",
            tmp_path / "m.onnx",
        )
        == 0
    )
    plain = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"]).run(None, {"images": x})[
        0
    ]
    assert np.allclose(plain, ((detector.reconstruct(x) - x) ** 2).mean(axis=(1, 2, 3)), rtol=1e-4, atol=1e-7)


def test_the_neighbours_method_adds_feature_space_distances(dense_run, digits, tmp_path):
    """method="neighbours": the reconstruction score plus the mean distance to the 5 nearest normal
    images in pixels and in codes, each standardised on the normal images; saved, loaded and
    exported with its reference."""
    ort = pytest.importorskip("onnxruntime")
    from sklearn.base import clone

    from aelab.anomaly import neighbour_distance

    reference = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]])
    assert neighbour_distance(torch.tensor([[0.0, 0.0]]), reference, 2).tolist() == [0.5]
    assert neighbour_distance(reference, reference, 1, leave_out=True).tolist() == [1.0, 1.0, 2.0]
    detector = aelab.AnomalyDetector.from_run(dense_run, method="neighbours")
    assert clone(detector).get_params()["method"] == "neighbours"
    scorer = detector.scorer_
    assert [type(part).__name__ for part in scorer.parts] == ["Reconstruction", "PixelNeighbours", "CodeNeighbours"]
    assert len(scorer.parts[1].reference) == 288 and scorer.standard.shape == (3, 2)  # the run's training digits
    x = np.concatenate([digits[:12], noise_images(4)])
    scores = detector.decision_function(x)
    assert scores[12:].min() > scores[:12].max() and detector.predict(noise_images(3)).tolist() == [1, 1, 1]
    plain = aelab.AnomalyDetector.from_run(dense_run, method="reconstruction")
    images, codes = torch.from_numpy(x).float()[:, None] / 255, aelab.encode(dense_run, torch.from_numpy(x))
    parts = np.stack(
        [
            plain.decision_function(x),
            neighbour_distance(images.flatten(1), scorer.parts[1].reference, 5),
            neighbour_distance(codes.flatten(1), scorer.parts[2].reference, 5),
        ]
    )
    standard = scorer.standard.numpy()
    assert np.allclose(scores, ((parts - standard[:, :1]) / standard[:, 1:]).sum(0), rtol=1e-5)
    loaded = aelab.AnomalyDetector.load(detector.save(tmp_path / "n.safetensors"))
    assert loaded.method == "neighbours" and np.allclose(loaded.decision_function(x), scores, rtol=1e-6)
    out = aelab.export(detector, tmp_path / "n.onnx", part="detector")
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    exported = session.run(None, {"images": x.astype(np.float32)[:, None] / 255})[0]
    assert np.allclose(exported, scores, rtol=1e-4, atol=1e-4)
    fitted = aelab.AnomalyDetector("dense", method="neighbours", epochs=1, batch_size=32).fit(digits[:100])
    assert (
        len(fitted.scorer_.parts[1].reference) == 100
    )  # fit: the normal images are the reference, each left out of its own
    assert fitted.labels_.mean() == pytest.approx(0.1, abs=0.02)
    with pytest.raises(AelabError, match="unknown method"):
        aelab.AnomalyDetector(method="knn")


def test_the_transformations_are_rotations_and_reflected_quarter_shifts():
    from aelab.transformations import TRANSFORMS, transform

    x = torch.arange(64.0).reshape(1, 1, 8, 8)
    assert len(TRANSFORMS) == 20 and len(set(TRANSFORMS)) == 20
    for index, (rotation, (right, down)) in enumerate(TRANSFORMS):
        if not (right or down):
            assert torch.equal(transform(x, index), torch.rot90(x, rotation, (-2, -1)))
    right = TRANSFORMS.index((0, (1, 0)))  # two pixels (a quarter of 8) to the right, reflected at the left edge
    moved = transform(x, right)[0, 0]
    assert torch.equal(moved[:, 2:], x[0, 0, :, :6]) and torch.equal(moved[:, 1], x[0, 0, :, 1])
    down_rotated = TRANSFORMS.index((1, (0, 1)))
    shifted = transform(x, TRANSFORMS.index((0, (0, 1))))
    assert torch.equal(transform(x, down_rotated), torch.rot90(shifted, 1, (-2, -1)))


def test_a_batch_is_transformed_in_one_gather_as_transform_does():
    from aelab.transformations import TRANSFORMS, _transformed, transform

    x = torch.rand(45, 2, 12, 12)
    drawn = torch.arange(45) % len(TRANSFORMS)
    moved, targets = _transformed(x, drawn)
    assert torch.equal(targets, drawn)
    for i in range(45):
        assert torch.equal(moved[i : i + 1], transform(x[i : i + 1], int(drawn[i]))), i


def test_the_networks_folded_evaluation_is_its_plain_one():
    """Pooling before each ReLU and the batch norms folded into the convolutions change nothing:
    the same outputs as conv, norm, ReLU, pool in evaluation; folded again after the weights move."""
    from aelab.transformations import fit_transformation_net

    net = fit_transformation_net(torch.rand(64, 1, 12, 12), epochs=1, width=4)
    x = torch.rand(8, 1, 12, 12)
    layers = list(net.net)
    order = [layers[i] for i in (0, 1, 3, 2, 4, 5, 7, 6, 8, 9, 10, 11, 12, 13)]  # conv, norm, ReLU, pool
    with torch.no_grad():
        assert torch.allclose(net(x), torch.nn.Sequential(*order)(x), atol=1e-5)
        first = net.inference()
        assert net.inference() is first  # folded once
        net.net[0].weight.add_(1.0)
        assert net.inference() is not first and torch.allclose(net(x), torch.nn.Sequential(*order)(x), atol=1e-4)


def test_the_combined_method_adds_the_transformations_score(dense_run, digits, tmp_path):
    """method="transformations": GEOM's score of a network that learnt which rotation and shift
    normal images went through; method="combined": the two distances of the neighbours method and
    that score, standardised and summed. Both are saved and loaded with the network, and exported to ONNX."""
    ort = pytest.importorskip("onnxruntime")
    from sklearn.base import clone

    from aelab.anomaly import neighbour_distance
    from aelab.transformations import TransformationNet, transformation_scores

    with aelab.fixed_threads(1):  # one count for both: the same sums, the same network (see below)
        combined = aelab.AnomalyDetector.from_run(dense_run, method="combined")
        alone = aelab.AnomalyDetector.from_run(dense_run, method="transformations")
    assert clone(combined).get_params()["method"] == "combined"
    assert [type(part).__name__ for part in combined.scorer_.parts] == [
        "PixelNeighbours",
        "CodeNeighbours",
        "Transformations",
    ]
    assert combined.scorer_.standard.shape == (3, 2) and alone.scorer_.standard.shape == (1, 2)
    assert len(combined.scorer_.parts[0].reference) == 288 and len(alone.scorer_.parts) == 1
    alone_net, combined_net = alone.scorer_.parts[0].net, combined.scorer_.parts[2].net
    alone_standard, combined_standard = alone.scorer_.standard.numpy(), combined.scorer_.standard.numpy()
    x = np.concatenate([digits[:12], noise_images(4)])
    images = torch.from_numpy(x).float()[:, None] / 255
    # the network is seeded by the run's seed: the same weights however the detector is built (at
    # one thread count: another count sums in another order)
    geom = transformation_scores(alone_net, images).numpy()
    assert np.allclose(transformation_scores(combined_net, images).numpy(), geom)
    assert np.allclose(alone.decision_function(x), (geom - alone_standard[0, 0]) / alone_standard[0, 1])
    neighbours = aelab.AnomalyDetector.from_run(dense_run, method="neighbours")
    # the distances standardised as the neighbours method standardises them, the error left out
    assert np.allclose(combined_standard[:2], neighbours.scorer_.standard.numpy()[1:])
    codes = aelab.encode(dense_run, torch.from_numpy(x))
    parts = np.stack(
        [
            neighbour_distance(images.flatten(1), combined.scorer_.parts[0].reference, 5).numpy(),
            neighbour_distance(codes.flatten(1), combined.scorer_.parts[1].reference, 5).numpy(),
            geom,
        ]
    )
    expected = ((parts - combined_standard[:, :1]) / combined_standard[:, 1:]).sum(0)
    scores = combined.decision_function(x)
    assert np.allclose(scores, expected, rtol=1e-5, atol=1e-5)
    assert scores[12:].min() > np.median(scores[:12])  # noise is stranger than most digits
    loaded = aelab.AnomalyDetector.load(combined.save(tmp_path / "c.safetensors"))
    assert loaded.method == "combined" and np.allclose(loaded.decision_function(x), scores, rtol=1e-6)
    assert loaded.scorer_.parts[2].net.net[0].out_channels == 8  # the network's width comes from the file
    wider = aelab.AnomalyDetector.from_run(dense_run, method="transformations")
    wider.scorer_.parts[0].net = TransformationNet(1, 32).eval()  # an earlier aelab's width
    loaded_wider = aelab.AnomalyDetector.load(wider.save(tmp_path / "w.safetensors"))
    assert loaded_wider.scorer_.parts[0].net.net[0].out_channels == 32
    out = aelab.export(loaded, tmp_path / "c.onnx", part="detector")
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert np.allclose(session.run(None, {"images": images.numpy()})[0], scores, rtol=1e-4, atol=1e-4)
    # a file whose network is missing is refused in one line
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    with safe_open(str(tmp_path / "c.safetensors"), framework="pt") as file:
        metadata = file.metadata()
    tensors = {k: v for k, v in load_file(tmp_path / "c.safetensors").items() if not k.startswith("transformations.")}
    save_file(tensors, str(tmp_path / "cut.safetensors"), metadata=metadata)
    with pytest.raises(AelabError, match="transformations network"):
        aelab.AnomalyDetector.load(tmp_path / "cut.safetensors")
    with pytest.raises(AelabError, match="square images"):
        from aelab.transformations import fit_transformation_net

        fit_transformation_net(torch.rand(4, 1, 8, 12))


def test_a_detector_file_keeps_the_parts_it_sums_and_an_older_combined_file_scores_as_it_did(
    dense_run, digits, tmp_path, monkeypatch
):
    """The file lists its parts; a combined file written before the list (then four parts, the
    reconstruction error among them) loads with those four and gives the scores it gave."""
    import json

    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    from aelab.anomaly import parts

    former = parts.Method(parts.FORMER_PARTS["combined"])
    with monkeypatch.context() as patch, aelab.fixed_threads(1):
        patch.setitem(parts.METHODS, "combined", former)
        old = aelab.AnomalyDetector.from_run(dense_run, method="combined")
        path = old.save(tmp_path / "old.safetensors")
    x = np.concatenate([digits[:8], noise_images(2)])
    with safe_open(str(path), framework="pt") as file:
        header = json.loads(file.metadata()["aelab_detector"])
    assert header["parts"] == list(parts.FORMER_PARTS["combined"])

    def rewritten(name: str, **changes):
        target = tmp_path / name
        changed = {k: v for k, v in {**header, **changes}.items() if v is not None}
        save_file(load_file(path), str(target), metadata={"aelab_detector": json.dumps(changed)})
        return target

    loaded = aelab.AnomalyDetector.load(rewritten("unlisted.safetensors", parts=None))  # as an older aelab wrote it
    assert loaded.method == "combined" and loaded.scorer_.standard.shape == (4, 2)
    assert np.allclose(loaded.decision_function(x), old.decision_function(x), rtol=1e-6)
    assert loaded.threshold_ == old.threshold_
    new = aelab.AnomalyDetector.load(aelab.AnomalyDetector.from_run(dense_run).save(tmp_path / "new.safetensors"))
    assert new.scorer_.standard.shape == (3, 2)
    for bad in (["reconstruction", "pixles"], "pixels", []):
        with pytest.raises(AelabError, match="damaged \\(parts: expected names among"):
            aelab.AnomalyDetector.load(rewritten("bad.safetensors", parts=bad))


def test_every_entry_point_has_the_one_default_method():
    """AnomalyDetector(), from_run, aelab score and aelab export: the same default (the most accurate)."""
    import inspect

    from aelab.anomaly import DEFAULT_METHOD

    defaults = {
        inspect.signature(function).parameters["method"].default
        for function in (aelab.AnomalyDetector, aelab.AnomalyDetector.from_run, aelab.anomaly.score_files, aelab.export)
    }
    assert defaults == {DEFAULT_METHOD} == {"combined"}


def test_a_fit_without_a_folder_leaves_nothing_behind_and_gives_numpy_for_numpy(small_data, tmp_path, monkeypatch):
    """PyOD's habits: fit writes nothing that outlives it; numpy in, numpy out for every method."""
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))  # a temporary directory of this test's own
    (tmp_path / "tmp").mkdir()
    monkeypatch.chdir(tmp_path)
    before = sorted(tmp_path.rglob("*"))
    digits = np.load(small_data / "digits.npz")["x"][:300]
    detector = aelab.AnomalyDetector(method="reconstruction", epochs=1).fit(digits)
    assert sorted(tmp_path.rglob("*")) == before and detector.run is None  # no run folder, logs or checkpoints left
    x = digits[:4]
    for name in ("decision_function", "predict", "predict_proba", "predict_confidence", "error_maps", "reconstruct"):
        assert isinstance(getattr(detector, name)(x), np.ndarray), name
    assert isinstance(detector.predict(x, return_confidence=True)[1], np.ndarray)
    assert isinstance(detector.reconstruct(torch.from_numpy(x)), torch.Tensor)  # a tensor in, a tensor out
    assert detector.reconstruct(x).shape == (4, 1, 28, 28)
