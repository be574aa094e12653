"""`aelab export`: ONNX files that onnxruntime runs to PyTorch's numbers, and one-line refusals."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import run_cli

import aelab
from aelab import Run, create_model
from aelab.errors import AelabError
from aelab.runs import write_json

ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install -e .[dev])")


def onnx_run(path, inputs: dict[str, np.ndarray]) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, inputs)[0]


def untrained_run(name: str, folder, **params) -> Run:
    """A run folder holding a freshly initialised model (export does not care how it was trained)."""
    torch.manual_seed(0)
    model = create_model(name, **params).eval()
    run = Run(folder)
    write_json(run.config_path, {"model": name, "params": model.params, "train": {}})
    run.save_weights(model)
    return run


def test_each_part_of_an_autoencoder_matches_pytorch(trained_run, tmp_path):
    run = Run(trained_run)
    x = torch.rand(5, 1, 28, 28)  # another batch size than the export's example: the batch axis is free
    codes = aelab.encode(run, x)
    expected = {
        "encoder": (x, codes),
        "both": (x, aelab.reconstruct(run, x)),
        "decoder": (codes, aelab.decode(run, codes)),
    }
    for part, (inputs, output) in expected.items():
        out = tmp_path / f"{part}.onnx"
        assert run_cli("export", trained_run, "--part", part, "--out", out) == 0
        name = "codes" if part == "decoder" else "images"
        got = onnx_run(out, {name: inputs.numpy()})
        assert got.shape == tuple(output.shape)
        assert np.abs(got - output.numpy()).max() < 1e-4, part


def test_a_run_used_in_python_first_still_exports(trained_run, tmp_path):
    """Encoding runs the convolutions channels-last under inference mode; the run's cached model
    keeps weights that can still be traced (they were inference tensors once: export failed)."""
    run = Run(trained_run)
    x = np.random.default_rng(0).random((3, 1, 28, 28), dtype=np.float32)
    codes = aelab.encode(run, x)
    out = aelab.export(run, tmp_path / "encoder.onnx", part="encoder")
    assert np.abs(onnx_run(out, {"images": x}) - codes).max() < 1e-4
    assert not any(p.is_inference() for p in run.model.parameters())


def test_a_generator_and_a_conditional_model_export_with_their_inputs(tmp_path):
    gan = untrained_run("gan-sn", tmp_path / "gan")
    z = torch.randn(3, gan.model.latent_dim)
    out = aelab.export(gan, tmp_path / "g.onnx", part="generator")
    with torch.no_grad():
        expected = gan.model(z).numpy()
    assert np.abs(onnx_run(out, {"latent": z.numpy()}) - expected).max() < 1e-4

    cvae = untrained_run("cvae", tmp_path / "cvae")
    x, labels = torch.rand(4, 1, 28, 28), torch.tensor([0, 3, 9, 9])
    out = aelab.export(cvae, tmp_path / "c.onnx", part="both")
    got = onnx_run(out, {"images": x.numpy(), "labels": labels.numpy()})
    assert np.abs(got - aelab.reconstruct(cvae, x, labels=labels).numpy()).max() < 1e-4


def test_bad_exports_are_one_line_and_leave_files_alone(trained_run, tmp_path, capsys):
    existing = tmp_path / "mine.onnx"
    existing.write_bytes(b"not ours")
    unpool = untrained_run("conv-unpool", tmp_path / "unpool")
    cases = [
        ((trained_run, "--out", existing), "exists"),
        ((trained_run, "--out", tmp_path / "x.txt"), ".onnx"),
        ((tmp_path / "nowhere", "--out", tmp_path / "y.onnx"), "does not exist"),
        ((unpool.path, "--part", "decoder", "--out", tmp_path / "u.onnx"), "pooling switches"),
        ((trained_run, "--part", "generator", "--out", tmp_path / "g.onnx"), "no generator"),
    ]
    for args, why in cases:
        assert run_cli("export", *args) == 2
        err = capsys.readouterr().err.strip()
        assert why in err and len(err.splitlines()) == 1, err
    assert existing.read_bytes() == b"not ours"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.onnx", "unpool"]
    with pytest.raises(AelabError, match="unknown part"):
        aelab.export(trained_run, tmp_path / "z.onnx", part="head")
    assert run_cli("export", trained_run, "--out", existing, "--overwrite") == 0
    assert existing.read_bytes() != b"not ours"
