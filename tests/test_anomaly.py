"""Anomaly scores: PyOD's detector API on an autoencoder, `aelab score`, and its refusals."""

from __future__ import annotations

import numpy as np
import pytest
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
    assert run_cli("train", "dense", "--data-dir", small_data, "--epochs", "3", "--batch-size", "32",
                   "--out", out, "--no-progress") == 0
    return out


def test_detector_follows_pyod_conventions(digits, tmp_path):
    detector = aelab.AnomalyDetector("dense", contamination=0.1, out=tmp_path / "run", epochs=3, batch_size=32)
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
    assert np.allclose(detector.pixel_errors_, normal, rtol=1e-5)
    assert np.allclose((maps / (normal + 1e-4)).mean(axis=(1, 2)), detector.decision_function(noise), rtol=1e-4)
    plain = aelab.AnomalyDetector("dense", score="mse")
    plain.run, plain.pixel_errors_ = detector.run, detector.pixel_errors_
    assert np.allclose(maps.mean(axis=(1, 2)), plain.decision_function(noise), rtol=1e-5)
    with pytest.raises(AelabError, match="unknown score"):
        aelab.AnomalyDetector("dense", score="max")
    assert (tmp_path / "run" / "model.safetensors").is_file()  # out keeps the run
    assert aelab.AnomalyDetector().model == "dense"  # the benchmark's best detector is the default


def test_detector_from_a_run_sets_its_threshold_on_validation_images(dense_run):
    detector = aelab.AnomalyDetector.from_run(dense_run, contamination=0.05)
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
    # a given threshold; the table may be written again (aelab wrote it)
    assert run_cli("score", dense_run, *files, "--threshold", "0", "--out", table, "--maps", maps) == 0
    assert all(line.endswith(",1") for line in table.read_text().splitlines()[1:])
    # the plain mean squared error against a given threshold needs none of the run's data
    assert run_cli("score", dense_run, *files, "--score", "mse", "--threshold", "0.1", "--out", table,
                   "--maps", maps) == 0
    plain = [line.split(",") for line in table.read_text().splitlines()[1:]]
    assert all(float(s) < 1 for _, s, _ in plain) and [f for _, _, f in plain][3:] == ["1", "1"]


def test_bad_score_input_is_one_line_and_writes_nothing(trained_run, tmp_path, capsys):
    image = tmp_path / "ok.png"
    Image.fromarray(noise_images(1)[0]).save(image)
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    foreign = tmp_path / "theirs.csv"
    foreign.write_text("a,b\n1,2\n")
    maps = tmp_path / "maps"
    cases = [
        ((trained_run, text, "--maps", maps), "notes.txt"),
        ((trained_run, tmp_path / "missing.png", "--maps", maps), "missing.png"),
        ((trained_run, image, "--out", foreign, "--maps", maps), "not an aelab score table"),
        ((trained_run, image, "--out", tmp_path / "s.txt", "--maps", maps), ".csv"),
        ((trained_run, image, "--contamination", "0.9", "--maps", maps), "contamination"),
        ((trained_run, image, "--threshold", "-1", "--maps", maps), "--threshold"),
        ((tmp_path / "norun", image, "--maps", maps), "does not exist"),
    ]
    for args, why in cases:
        assert run_cli("score", *args) == 2
        err = capsys.readouterr().err.strip()
        assert why in err and len(err.splitlines()) == 1, err
    assert foreign.read_text() == "a,b\n1,2\n"
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
