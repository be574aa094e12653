"""Using a trained run: every function takes the run (a :class:`~aelab.Run` or its folder) first,
loads its model once, and says ``labels=`` for a conditional model's classes. The functions that
end in ``_figure`` (and :func:`reconstruct_files`, :func:`encode_file`) write what the CLI
commands of the same names write, so the CLI, the Python API and the web page share them, and
return the file they wrote. Arrays keep :mod:`aelab.arrays`' convention: numpy in, numpy out;
a tensor in, a tensor out; numpy where nothing goes in.

    import aelab
    x_hat = aelab.reconstruct("runs/demo", x)     # x: (N, H, W), (N, C, H, W) or (N, H, W, C), uint8 or in [0, 1]
    z = aelab.encode("runs/demo", x); images = aelab.decode("runs/demo", z)
    aelab.inference.sample_figure("runs/vae", n=100)        # runs/vae/samples.png
"""

from .generation import (
    generate,
    interpolate,
    interpolate_figure,
    latent,
    latent_figure,
    manifold,
    manifold_figure,
    sample,
    sample_figure,
)
from .images import decode, decoder, encode, encode_file, encode_split, encoder, reconstruct, reconstruct_files
from .inside import activation_epochs, activation_figure, activations, probe

__all__ = [
    "activation_epochs",
    "activation_figure",
    "activations",
    "decode",
    "decoder",
    "encode",
    "encode_file",
    "encode_split",
    "encoder",
    "generate",
    "interpolate",
    "interpolate_figure",
    "latent",
    "latent_figure",
    "manifold",
    "manifold_figure",
    "probe",
    "reconstruct",
    "reconstruct_files",
    "sample",
    "sample_figure",
]
