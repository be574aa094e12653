"""The second audit's cases (issue 44) not covered beside their features: concurrent writers,
files that are not files, numbers read back from files, limits from what the process may use,
messages that say what happened. Each: one line, exit 2 (or the API's AelabError), nothing written."""

from __future__ import annotations

import json
import os
import shutil
import threading

import numpy as np
import pytest
import torch
from conftest import run_cli
from PIL import Image
from safetensors.torch import load_file, save_file
from test_bad_input import error_line
from test_export import untrained_run

import aelab
from aelab import limits, outputs
from aelab.errors import AelabError
from aelab.lock import LOCK_NAME, RunLock


def test_of_two_commands_writing_one_new_file_the_second_refuses(tmp_path):
    """Both checked the target while it was absent; the first to finish writes it, the second
    says so instead of replacing it."""
    target = tmp_path / "out.png"
    (checked,) = outputs.check_targets([target])  # this command's check: the file is new
    other = tmp_path / "other.txt"
    other.write_text("another command's result")
    os.link(other, target)  # ... and another command writes it meanwhile
    with pytest.raises(AelabError, match="appeared while this command ran"):
        outputs.atomic_write(checked, lambda tmp: tmp.write_text("this command's result"))
    assert target.read_text() == "another command's result" and not list(tmp_path.glob(".*.tmp"))
    outputs.check_targets([target], overwrite=True)  # with --overwrite the last one wins, as asked
    outputs.atomic_write(target, lambda tmp: tmp.write_text("replaced"))
    assert target.read_text() == "replaced" and other.read_text() == "another command's result"


def test_two_samples_into_one_file_at_once_leave_one_result_and_one_refusal(tmp_path):
    vae = untrained_run("vae", tmp_path / "vae").path
    out = tmp_path / "grid.png"
    codes = []
    barrier = threading.Barrier(2)
    real = outputs.atomic_write

    def in_step(path, write):  # both commands have checked the target before either writes
        barrier.wait(timeout=30)
        return real(path, write)

    def one(seed):
        try:
            aelab.inference.sample_figure(vae, out=out, n=4, seed=seed)
            codes.append(0)
        except AelabError as error:
            codes.append(str(error))

    from aelab import figures

    figures.atomic_write, saved = in_step, figures.atomic_write
    try:
        workers = [threading.Thread(target=one, args=(seed,)) for seed in (1, 2)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=60)
    finally:
        figures.atomic_write = saved
    assert codes.count(0) == 1 and any("appeared while this command ran" in str(code) for code in codes), codes
    assert out.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_a_pipe_or_a_device_is_not_called_missing(tmp_path, capsys, trained_run):
    pipe = tmp_path / "pipe.png"
    os.mkfifo(pipe)
    for args, says in (
        (("reconstruct", trained_run, pipe, "--out", tmp_path / "r"), "is not a regular file"),
        (("reconstruct", trained_run, "/dev/urandom", "--out", tmp_path / "r"), "is not a regular file"),
        (("reconstruct", trained_run, trained_run, "--out", tmp_path / "r"), "is a folder, not a file"),
    ):
        assert run_cli(*args) == 2
        assert says in error_line(capsys)
    assert not (tmp_path / "r").exists()


def test_whole_number_pixels_of_any_width_are_8_bit_levels(tmp_path, capsys):
    from aelab.data import array_images

    levels = np.array([[[0, 128], [255, 64]]], dtype=np.int64)
    assert torch.allclose(array_images(levels, "x")[0, 0], torch.tensor([[0, 128], [255, 64]]) / 255.0)
    assert array_images(np.array([[[0, 1], [1, 0]]], dtype=np.int32), "x").max() == 1.0  # 0/1: as they are
    with pytest.raises(AelabError, match="whole-number pixel values must be 8-bit levels from 0 to 255, got 0 to 300"):
        array_images(np.array([[[0, 300]]], dtype=np.int64), "x")
    with pytest.raises(AelabError, match=r"float64 pixel values must lie in \[0, 1\], got -0.5 to 2"):
        array_images(np.array([[[-0.5, 2.0]]]), "x")


def test_a_detector_file_with_damaged_numbers_is_refused(trained_run, tmp_path):
    path = aelab.AnomalyDetector.from_run(trained_run, method="reconstruction").save(tmp_path / "d.safetensors")
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as file:
        header = json.loads(file.metadata()["aelab_detector"])
    tensors = load_file(path)

    def damaged(name, tensors=tensors, **changes):
        copy = tmp_path / f"{name}.safetensors"
        save_file(tensors, str(copy), metadata={"aelab_detector": json.dumps({**header, **changes})})
        return copy

    for file, says in (
        (damaged("nan", threshold=float("nan")), "threshold is nan"),
        (
            damaged("flat", tensors={**tensors, "decision_scores": tensors["decision_scores"][:, None]}),
            "decision_scores: expected finite numbers in 1 dimension",
        ),
        (
            damaged("inf", tensors={**tensors, "decision_scores": tensors["decision_scores"] * np.inf}),
            "decision_scores",
        ),
        (damaged("odd", contamination=0.9), "contamination"),
    ):
        with pytest.raises(AelabError, match=says):
            aelab.AnomalyDetector.load(file)
    loaded = aelab.AnomalyDetector.load(path)
    images = np.random.default_rng(0).random((4, 28, 28)).astype(np.float32)
    for bad in (0, -1, float("nan")):
        with pytest.raises(AelabError, match="T must be"):
            loaded.predict_with_rejection(images, T=bad)


def test_codes_that_are_not_finite_are_one_line(tmp_path):
    vae = untrained_run("vae", tmp_path / "vae").path
    for bad in (np.nan, np.inf):
        with pytest.raises(AelabError, match="codes must be finite numbers"):
            aelab.decode(vae, np.full((1, 2), bad, np.float32))
    with pytest.raises(AelabError, match="codes must be"):
        aelab.decode(vae, "abc")


def test_eval_of_a_run_still_training_says_so(trained_run, tmp_path, capsys):
    copy = tmp_path / "run"
    shutil.copytree(trained_run, copy)
    (copy / "model.safetensors").unlink()
    (copy / LOCK_NAME).unlink(missing_ok=True)
    with RunLock(copy):  # a training process holds the folder
        assert run_cli("eval", copy) == 2
        assert f"is still training (process {os.getpid()})" in error_line(capsys)


def test_a_run_stopped_before_its_first_checkpoint_is_started_again_with_overwrite(
    trained_run, small_data, tmp_path, capsys
):
    copy = tmp_path / "run"
    shutil.copytree(trained_run, copy)
    shutil.rmtree(copy / "checkpoints")
    (copy / "model.safetensors").unlink()
    assert run_cli("train", "dense", "--data-dir", small_data, "--epochs", "1", "--out", copy) == 2
    assert "stopped before its first checkpoint (nothing to resume); pass --overwrite" in error_line(capsys)


def test_ensemble_of_a_gan_and_bad_storage_and_host_say_what_is_wrong(trained_run, tmp_path, capsys):
    gan = untrained_run("gan", tmp_path / "gan").path
    assert run_cli("ensemble", trained_run, gan, "--data", "mnist-sample") == 2
    assert "which does not reconstruct images" in error_line(capsys)
    assert run_cli("tune", "dense", "--storage", "", "--out", tmp_path / "study") == 2
    assert "--storage is empty" in error_line(capsys) and not (tmp_path / "study").exists()
    assert run_cli("serve", trained_run, "--host", "999.1.1.1") == 2
    assert "--host '999.1.1.1' is not an address or a known host name" in error_line(capsys)


def test_a_user_folder_named_best_in_a_study_is_refused_before_any_trial(tmp_path, capsys):
    study = tmp_path / "study"
    (study / "best").mkdir(parents=True)
    (study / "study.db").write_bytes(b"")
    assert run_cli("tune", "dense", "--resume", "--out", study) == 2
    assert "is not the link to the best trial" in error_line(capsys)


def test_memory_limits_come_from_what_the_process_may_use(monkeypatch, tmp_path):
    monkeypatch.setattr(limits, "_machine_memory", lambda: 64 << 30)
    monkeypatch.setattr(limits, "_cgroup_memory", lambda: 2 << 30)  # a container's share
    monkeypatch.setattr(limits, "_address_space", lambda: None)
    assert limits.available_memory() == 2 << 30
    with pytest.raises(AelabError, match="this process can have 2.0 GiB more"):
        limits.check_memory("a big request", 3 << 30)
    monkeypatch.setattr(limits, "_address_space", lambda: 1 << 30)  # ulimit -v
    assert limits.available_memory() == 1 << 30
    huge = np.broadcast_to(np.zeros((28, 28), np.float32), (10**7, 28, 28))  # no memory until copied
    with pytest.raises(AelabError, match="would need about"):
        aelab.reconstruct(untrained_run("dense", tmp_path / "dense").path, huge)


def test_the_data_resized_to_a_huge_side_is_refused_before_it_is_made(tmp_path, capsys):
    assert run_cli("train", "dense", "--param", "in_size=2048", "--out", tmp_path / "r") == 2  # 4,000 digits
    assert "the data resized to 2048x2048" in error_line(capsys) and not (tmp_path / "r").exists()


def test_paths_of_the_wrong_type_are_one_line(trained_run, tmp_path):
    for call, says in (
        (lambda: aelab.load(None), "got NoneType"),
        (lambda: aelab.Run(5), "got int"),
        (lambda: aelab.Run(b"runs/x"), "got bytes"),
        (lambda: aelab.export(trained_run, 123), "must be a path"),
        (lambda: aelab.reconstruct(aelab.load(trained_run), np.zeros((1, 28, 28))), "got a model"),
    ):
        with pytest.raises(AelabError, match=says):
            call()


def test_a_six_image_folder_in_latent_and_odd_api_arguments_are_one_line(small_data, tmp_path, capsys):
    run = tmp_path / "dense"
    assert run_cli("train", "dense", "--data-dir", small_data, "--epochs", "1", "--out", run, "--no-progress") == 0
    folder = tmp_path / "six"
    folder.mkdir()
    for i in range(6):
        Image.fromarray((np.random.default_rng(i).random((28, 28)) * 255).astype(np.uint8)).save(folder / f"{i}.png")
    capsys.readouterr()
    assert run_cli("latent", run, "--data-dir", folder, "--out", tmp_path / "l.png") == 2
    assert "too few to place" in error_line(capsys) and not (tmp_path / "l.png").exists()
    with pytest.raises(AelabError, match="the pattern must be a string"):
        aelab.list_models(None)
    levels = np.random.default_rng(0).integers(0, 256, (2, 28, 28))  # int64 8-bit levels, as np.array(lists) makes
    assert np.allclose(aelab.reconstruct(run, levels), aelab.reconstruct(run, levels.astype(np.uint8)))
    assert aelab.reconstruct(run, levels.astype(np.float16) / 255).dtype == np.float32
