"""Seed 3's character-level LSTM: the model, temperature sampling, the n-gram baseline, the text
data, training and generation end to end, and bad input."""

from __future__ import annotations

import json
import math

import pytest
import torch
from conftest import run_cli
from test_bad_input import error_line

import aelab
from aelab.data.sources import pydoc_topics
from aelab.data.text import NGram, TextData, WindowBatches, encode, load_text, windows
from aelab.nets.text import sample_index


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """20,000 characters of the default corpus, as a user's text file."""
    path = tmp_path_factory.mktemp("text") / "topics.txt"
    path.write_text(pydoc_topics()[:20000], encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def text_run(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "lstm"
    assert run_cli("train", "char-lstm", "--text", corpus, "--epochs", "1", "--out", out, "--no-progress") == 0
    return out


def test_the_model_is_the_seeds_and_one_step_trains():
    model = aelab.create_model("char-lstm", alphabet="abcdefgh")
    assert (model.lstm.input_size, model.lstm.hidden_size, model.lstm.num_layers) == (8, 128, 1)
    assert model.head.out_features == 8 and (model.maxlen, model.step) == (40, 3)
    x, y = torch.randint(0, 8, (16, 40)), torch.randint(0, 8, (16,))
    assert model(x).shape == (16, 8)
    optimizer = torch.optim.RMSprop(model.parameters(), lr=0.01, alpha=0.9, eps=1e-7)
    before = torch.nn.functional.cross_entropy(model(x), y)
    before.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    optimizer.step()
    assert torch.nn.functional.cross_entropy(model(x), y) < before
    embedded = aelab.create_model("char-lstm", alphabet="abcdefgh", embedding=5, layers=2)
    assert embedded.lstm.input_size == 5 and embedded(x).shape == (16, 8)


def test_one_hot_input_is_what_the_lstm_reads():
    model = aelab.create_model("char-lstm", alphabet="abc", maxlen=4)
    x = torch.tensor([[0, 2, 1, 1]])
    out, _ = model.lstm(torch.eye(3)[x])
    assert torch.allclose(model(x), model.head(out[:, -1]))


def test_temperature_sampling():
    logits = torch.tensor([0.1, 2.0, 0.3, 1.9])
    assert sample_index(logits, 0.0) == 1  # temperature 0: the argmax
    assert all(sample_index(logits, 1e-6, torch.Generator().manual_seed(s)) == 1 for s in range(20))
    draws = [sample_index(logits, 1.0, torch.Generator().manual_seed(s)) for s in range(200)]
    assert len(set(draws)) > 2  # at temperature 1 the others are drawn too
    again = [sample_index(logits, 1.0, torch.Generator().manual_seed(s)) for s in range(200)]
    assert draws == again  # a fixed seed repeats
    with pytest.raises(aelab.AelabError):
        sample_index(logits, -1.0)


def test_reweighting_is_the_seeds():
    """softmax(log p / T) is the seed's reweight_distribution."""
    p = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)
    seed = p.log() / 0.5
    seed = seed.exp() / seed.exp().sum()
    ours = torch.softmax(p.log().log_softmax(-1) / 0.5, -1)
    assert torch.allclose(ours, seed)


def test_ngram_against_a_hand_count():
    model = NGram("abab", n=2, alphabet_size=2)
    # counts: ab x2, ba x1; contexts a x2, b x1 (the last character has no successor)
    assert model.grams["ab"] == 2 and model.grams["ba"] == 1 and model.contexts["a"] == 2
    # P(b|a) = (2+1)/(2+2) = 3/4, P(a|b) = (1+1)/(1+2) = 2/3 for "aba" from index 1
    expected = -(math.log2(3 / 4) + math.log2(2 / 3)) / 2
    assert model.bits_per_char("aba", 1) == pytest.approx(expected)
    unigram = NGram("aab", n=1, alphabet_size=2)
    assert unigram.bits_per_char("ab", 0) == pytest.approx(-(math.log2(3 / 5) + math.log2(2 / 5)) / 2)


def test_windows_are_a_view_of_the_text():
    text = torch.arange(100)
    view = windows(text, 40, 3)
    assert view.shape == (20, 41) and view.data_ptr() == text.data_ptr()  # the seed: range(0, 100 - 40, 3)
    assert torch.equal(view[2], text[6:47])
    inputs, targets = next(iter(WindowBatches(text, 40, 3, batch_size=4)))
    assert inputs.shape == (4, 40) and torch.equal(targets, torch.tensor([40, 43, 46, 49]))


def test_the_default_corpus_ships_with_python():
    data = load_text()
    total = sum(len(part) for part in (data.train, data.val, data.test))
    assert data.name == "pydoc-topics" and total > 400_000
    assert len(data.val) == pytest.approx(total * 0.05, abs=2) and len(data.test) == pytest.approx(total * 0.05, abs=2)


def test_training_writes_metrics_samples_and_generates(text_run, capsys):
    metrics = json.loads((text_run / "metrics.json").read_text())
    for key in (
        "test_loss",
        "test_bits_per_char",
        "test_accuracy",
        "alphabet_size",
        "ngram_test_bits_per_char",
        "ngram_n",
    ):
        assert metrics[key] is not None, key
    assert metrics["test_bits_per_char"] == pytest.approx(metrics["test_loss"] / math.log(2))
    samples = (text_run / "samples.txt").read_text()
    assert all(f"temperature {t}" in samples for t in (0.2, 0.5, 1.0, 1.2))
    capsys.readouterr()
    assert run_cli("generate", text_run, "--prompt", "The ", "--length", "30", "--temperature", "0", "1") == 0
    out = capsys.readouterr().out
    assert "temperature 0.0" in out and "temperature 1.0" in out
    run = aelab.Run(text_run)
    assert aelab.generate(run, "The ", 30, 1.0, seed=3) == aelab.generate(run, "The ", 30, 1.0, seed=3)
    assert len(aelab.generate(run, "x", 12, 0.5)) == 12


def test_a_prompt_outside_the_alphabet_is_one_line(text_run, capsys):
    assert run_cli("generate", text_run, "--prompt", "naïve ☃") == 2
    line = error_line(capsys)
    assert "outside the model's alphabet" in line and "☃" in line


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "empty"),
        (b"   \n\n", "empty"),
        (b"\x00\x01binary\x00", "binary"),
        (b"\xff\xfe caf\xe9", "not UTF-8"),
        (b"just a few words", "too short"),
    ],
)
def test_bad_text_files_are_one_line(content, message, tmp_path, capsys):
    path = tmp_path / "t.txt"
    path.write_bytes(content)
    assert run_cli("train", "char-lstm", "--text", path, "--out", tmp_path / "r") == 2
    assert message in error_line(capsys)
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("flag, value", [("--noise", "0.5"), ("--val-fraction", "0.2"), ("--loss", "mse")])
def test_image_settings_are_refused_for_text(corpus, flag, value, tmp_path, capsys):
    assert run_cli("train", "char-lstm", "--text", corpus, flag, value, "--out", tmp_path / "r") == 2
    assert "char-lstm has no setting" in error_line(capsys)


def test_text_runs_resume(corpus, text_run, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(text_run, copy)
    assert run_cli("train", "--resume", "--epochs", "2", "--out", copy, "--no-progress") == 0
    assert [row["epoch"] for row in aelab.Run(copy).history] == [1, 2]
    assert (copy / "samples.txt").read_text().count("=== epoch") == 2


def test_text_data_encodes_against_its_alphabet():
    data = load_text(TextData("t", "ab", torch.tensor([0]), torch.tensor([1]), torch.tensor([0])))
    assert data.encode("ba").tolist() == [1, 0]
    with pytest.raises(aelab.AelabError, match="outside"):
        encode("abc", "ab")


def test_a_text_run_records_its_corpus_and_evaluates_again(text_run, corpus, tmp_path):
    from aelab.training import plan

    assert aelab.Run(text_run).config.data == corpus.name
    assert plan("char-lstm", None, tmp_path / "r", False, False, "cpu", {}).config.data == "pydoc-topics"
    assert not (tmp_path / "r").exists()  # planning writes nothing
    before = json.loads((text_run / "metrics.json").read_text())
    assert run_cli("eval", text_run) == 0
    assert json.loads((text_run / "metrics.json").read_text())["test_loss"] == pytest.approx(before["test_loss"])
