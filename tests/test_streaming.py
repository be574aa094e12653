"""Image folders read lazily (`--stream`): shards decoded in workers and cached, each image once an
epoch, each process its share, the same split as in memory, and one-line errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import aelab
from aelab import distributed
from aelab.cli import main as cli
from aelab.data import resolve_data, streaming
from aelab.data.streaming import FolderStream, StreamBatches
from aelab.errors import AelabError


@pytest.fixture()
def folder(tmp_path, monkeypatch, small_data):
    """300 real digits as PNG files in class sub-folders; the stream cache inside tmp_path."""
    monkeypatch.setenv("AELAB_DATA_HOME", str(tmp_path / "home" / "datasets"))
    monkeypatch.setattr(streaming, "SHARD_SIZE", 64)
    digits = np.load(small_data / "digits.npz")
    root = tmp_path / "digits"
    for i, (image, label) in enumerate(zip(digits["x"][:300], digits["y"][:300])):
        (root / str(label)).mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(root / str(label) / f"{i:04d}.png")
    return root


def test_a_streamed_folder_is_split_as_in_memory(folder):
    stream, memory = resolve_data(folder, stream=True), resolve_data(folder, stream=False)
    assert isinstance(stream, FolderStream) and stream.shape == memory.shape == (1, 28, 28)
    assert torch.equal(stream.test, memory.test) and torch.equal(stream.test_labels, memory.test_labels)
    assert torch.equal(stream.train, memory.train) and torch.equal(stream.train_labels, memory.train_labels)
    assert len(stream) == len(memory.train) == 240
    assert stream.classes == memory.classes is not None  # the class sub-folders' names, as the latent legend shows


@pytest.mark.parametrize("labelled", [None, 0.25])
def test_the_same_seed_gives_the_same_labelled_images_and_split_in_memory_or_streamed(folder, labelled):
    """One split rule (data.memory.training_split): validation held out first, then all but the
    ``labelled`` share of the training images' labels hidden; validation keeps its labels."""
    stream, memory = resolve_data(folder, stream=True), resolve_data(folder, stream=False)
    options = dict(batch_size=1000, val_fraction=0.2, seed=3, labelled=labelled, noise=0.1)
    (s_train, s_val), (m_train, m_val) = stream.batches(**options), memory.batches(**options)
    s_batches, m_batches = list(s_val), list(m_val)
    assert len(s_batches) == len(m_batches) == 1
    for s_part, m_part in zip(s_batches[0], m_batches[0]):  # inputs (noised alike), targets[, labels]
        assert torch.equal(s_part, m_part)
    # the training side: the same images with the same labels (each epoch in its own order)
    s_rows, m_rows = _images_and_labels(s_train), _images_and_labels(m_train)
    assert s_rows == m_rows and len(m_rows) == 192
    if labelled is not None:
        kept = [y for _, y in m_rows if y != aelab.data.UNLABELLED]
        assert 0 < len(kept) < len(m_rows) and (m_batches[0][2] != aelab.data.UNLABELLED).all()


def _images_and_labels(batches) -> list[tuple[bytes, int | None]]:
    """Every image of an epoch's batches (its bytes) with its label (None: batches without)."""
    rows = []
    for batch in batches:
        labels = batch[2].tolist() if len(batch) == 3 else [None] * len(batch[0])
        rows += [(x.numpy().tobytes(), y) for x, y in zip(batch[0], labels)]
    return sorted(rows, key=lambda row: (row[0], -2 if row[1] is None else row[1]))


def test_each_image_once_an_epoch_then_from_the_cache(folder, monkeypatch):
    data = resolve_data(folder, stream=True)
    train, val = data.batches(50, 0.1, seed=0, labelled=1.0)  # every label kept
    shards, train_labels = train.shards, train.labels
    assert len(val.inputs) == len(val.labels) == 24 and len(shards.files) == 216 and len(shards) == 4  # 64, 64, 64, 24
    batches = StreamBatches(shards, batch_size=50, workers=1, labels=train_labels)
    epoch = list(batches)
    assert len(epoch) == len(batches) == 5 and [len(b[0]) for b in epoch] == [50, 50, 50, 50, 16]
    images, labels = torch.cat([b[0] for b in epoch]), torch.cat([b[2] for b in epoch])
    expected = streaming.decode(shards.files, 1, 28)
    # every training image exactly once, with its own label
    order = [
        int(np.flatnonzero((expected == (image * 255).round().byte().numpy()).all(axis=(1, 2, 3)))[0])
        for image in images
    ]
    assert sorted(order) == list(range(216)) and torch.equal(labels, train_labels[order])
    assert shards.cached() == 4
    monkeypatch.setattr(streaming, "decode", lambda *a: pytest.fail("a cached shard was decoded again"))
    again = torch.cat([b[0] for b in batches])  # the next epoch, read from the cache
    assert sorted(again.sum(dim=(1, 2, 3)).tolist()) == pytest.approx(sorted(images.sum(dim=(1, 2, 3)).tolist()))
    assert not torch.equal(again, images)  # in a new order


def test_each_process_reads_its_share_of_the_full_shards(folder, monkeypatch):
    shards = resolve_data(folder, stream=True).batches(32, 0.1, seed=0)[0].shards
    seen = []
    for rank in (0, 1):
        monkeypatch.setattr(distributed, "rank_and_world", lambda rank=rank: (rank, 2))
        monkeypatch.setattr(streaming, "rank_and_world", lambda rank=rank: (rank, 2))
        batches = StreamBatches(shards, batch_size=32, workers=0, labels=torch.arange(216))
        got = [b[2] for b in batches]
        assert len(got) == len(batches) == 64 // 32 and all(len(b) == 32 for b in got)  # 3 full shards: 1 each
        seen.append(torch.cat(got))
    assert not set(seen[0].tolist()) & set(seen[1].tolist())


def test_train_streams_a_folder_and_evaluates(folder, tmp_path):
    run = aelab.train("dense", data=folder, out=tmp_path / "run", stream=True, epochs=2, batch_size=64, progress=False)
    assert run.config.train.stream is True and len(run.history) == 2
    assert run.metrics["test_images"] == 60 and run.metrics["test_rmse"] > 0 and run.metrics["pca_rmse"] > 0
    assert streaming.stream_cache_root().is_dir()  # the shards were cached beside the datasets
    assert aelab.evaluate(run)["test_images"] == 60  # the run's data reload as a stream
    resumed = aelab.train(out=tmp_path / "run", resume=True, epochs=3, progress=False)
    assert len(resumed.history) == 3


def test_bad_stream_input_is_one_line_and_writes_nothing(folder, tmp_path, capsys, small_data):
    cases = [
        (["--data", "mnist-sample"], "--stream reads a folder of image files"),
        (["--data-dir", str(small_data)], "holds .npy/.npz arrays"),
        (["--data-dir", str(folder), "char-lstm"], "char-lstm has no setting --stream"),
    ]
    for extra, message in cases:
        model = [a for a in extra if a == "char-lstm"] or ["dense"]
        args = [
            "train",
            *model,
            "--out",
            str(tmp_path / "bad"),
            "--stream",
            "--epochs",
            "1",
            *[a for a in extra if a != "char-lstm"],
        ]
        assert cli(args) != 0
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err
        assert not (tmp_path / "bad").exists()
    (folder / "3" / "broken.png").write_bytes(b"not a png")
    assert cli(["train", "dense", "--data-dir", str(folder), "--out", str(tmp_path / "bad"), "--stream"]) != 0
    err = capsys.readouterr().err.strip()
    assert "broken.png is not a readable image" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "bad").exists()
    with pytest.raises(AelabError, match="arrays are held in memory"):
        resolve_data(np.zeros((10, 28, 28), np.uint8), stream=True)
