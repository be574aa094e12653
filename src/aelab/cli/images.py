"""`aelab reconstruct`, `denoise`, `encode`, `sample`, `manifold`, `latent`, `interpolate`: a trained run on images."""

from __future__ import annotations

import argparse

import aelab
from aelab import AelabError

from .options import (
    api_choices,
    api_default,
    command,
    data_arguments,
    data_of,
    label_argument,
    overwrite_argument,
    run_arguments,
)


def _image_command(args: argparse.Namespace, mode: str) -> None:
    written = aelab.inference.reconstruct_files(
        args.run_dir,
        args.images,
        args.out,
        noise=getattr(args, "noise", 0.0),
        precision=args.precision,
        mode=mode,
        labels=args.label,
        overwrite=args.overwrite,
    )
    print(f"wrote {len(written) - 1} image(s) and {written[-1]}")


@command("reconstruct", "encode and decode image files with a trained run")
def cmd_reconstruct(args: argparse.Namespace) -> None:
    _image_command(args, "reconstruct")


def _image_arguments(p: argparse.ArgumentParser, noise: bool = False) -> None:
    p.add_argument("run_dir")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--out", required=True, help="folder for the output PNGs")
    overwrite_argument(p, "PNGs of the same names in --out")
    p.add_argument(
        "--precision",
        default=api_default(aelab.inference.reconstruct_files, "precision"),
        help="auto (bf16 where the CPU has it: images are 8-bit anyway) or 32",
    )
    label_argument(p, "the images' class")
    if noise:
        p.add_argument(
            "--noise",
            type=float,
            default=api_default(aelab.inference.reconstruct_files, "noise"),
            help="add this much noise first (to try the model)",
        )


cmd_reconstruct.arguments = _image_arguments


@command("denoise", "remove noise from image files with a trained (denoising) run")
def cmd_denoise(args: argparse.Namespace) -> None:
    _image_command(args, "denoise")


cmd_denoise.arguments = lambda p: _image_arguments(p, noise=True)


@command("encode", "write the codes of a dataset's images to a .npy file")
def cmd_encode(args: argparse.Namespace) -> None:
    out, codes = aelab.inference.encode_file(
        args.run_dir, args.out, args.split, data_of(args), precision=args.precision, overwrite=args.overwrite
    )
    print(f"wrote {out}: {len(codes)} codes of size {codes.shape[1]} ({args.split} split)")


def _encode_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir")
    data_arguments(p, "the run's")
    p.add_argument(
        "--split",
        choices=api_choices(aelab.inference.encode_file, "split"),
        default=api_default(aelab.inference.encode_file, "split"),
    )
    p.add_argument("--out", required=True, help="the .npy file to write")
    overwrite_argument(p)
    p.add_argument(
        "--precision",
        default=api_default(aelab.inference.encode_file, "precision"),
        help="32 (exact codes, the default) or auto (bf16 where supported)",
    )


cmd_encode.arguments = _encode_arguments


@command("sample", "draw new images from a generative run (its prior), or any autoencoder's (a fitted mixture)")
def cmd_sample(args: argparse.Namespace) -> None:
    out = aelab.inference.sample_figure(
        args.run_dir,
        args.out,
        args.n,
        args.seed,
        labels=args.label,
        overwrite=args.overwrite,
        sampler=args.sampler,
        components=args.components,
    )
    print(f"wrote {out} ({args.n} samples{'' if args.label is None else f' of class {args.label}'})")


def _sample_arguments(p: argparse.ArgumentParser) -> None:
    run_arguments(p, "samples.png")
    p.add_argument("-n", type=int, default=api_default(aelab.inference.sample_figure, "n"), help="number of samples")
    p.add_argument("--seed", type=int, default=api_default(aelab.inference.sample_figure, "seed"))
    label_argument(p, "the class to draw")
    p.add_argument(
        "--sampler",
        choices=("prior", "gmm"),
        help="prior: the model's own (vae, vqvae, wae, aae, gan, ...); gmm: a Gaussian mixture fitted to the "
        "training codes, kept in the run folder (any autoencoder; the default for one without a prior)",
    )
    p.add_argument(
        "--components",
        type=int,
        default=api_default(aelab.inference.sample_figure, "components"),
        help="the gmm sampler's number of components",
    )


cmd_sample.arguments = _sample_arguments


@command("manifold", "decode a grid over the prior's quantiles of a 2-D latent space")
def cmd_manifold(args: argparse.Namespace) -> None:
    out = aelab.inference.manifold_figure(
        args.run_dir, args.out, args.grid, labels=args.label, overwrite=args.overwrite
    )
    print(f"wrote {out} ({args.grid}x{args.grid} points)")


def _manifold_arguments(p: argparse.ArgumentParser) -> None:
    run_arguments(p, "manifold.png")
    p.add_argument(
        "--grid", type=int, default=api_default(aelab.inference.manifold_figure, "grid"), help="points per side"
    )
    label_argument(p, "the class whose manifold to draw")


cmd_manifold.arguments = _manifold_arguments


@command("latent", "scatter a dataset's test codes in 2-D, coloured by label")
def cmd_latent(args: argparse.Namespace) -> None:
    print(
        f"wrote {aelab.inference.latent_figure(args.run_dir, args.out, data_of(args), args.limit, overwrite=args.overwrite)}"
    )


def _latent_arguments(p: argparse.ArgumentParser) -> None:
    run_arguments(p, "latent.png")
    data_arguments(p, "the run's")
    p.add_argument(
        "--limit",
        type=int,
        default=api_default(aelab.inference.latent_figure, "limit"),
        help="at most this many test images",
    )


cmd_latent.arguments = _latent_arguments


@command("interpolate", "decode the straight path between the codes of two images (or two prior points)")
def cmd_interpolate(args: argparse.Namespace) -> None:
    if len(args.images) not in (0, 2):
        raise AelabError(f"give two images (or none, for a generative model), got {len(args.images)}")
    out = aelab.inference.interpolate_figure(
        args.run_dir,
        *args.images,
        out=args.out,
        steps=args.steps,
        seed=args.seed,
        labels=args.label,
        overwrite=args.overwrite,
    )
    print(f"wrote {out} ({args.steps} steps{', framed by the two inputs' if args.images else ''})")


def _interpolate_arguments(p: argparse.ArgumentParser) -> None:
    run_arguments(p, "interpolation.png")
    p.add_argument("images", nargs="*", metavar="IMAGE", help="IMAGE_A IMAGE_B")
    p.add_argument("--steps", type=int, default=api_default(aelab.inference.interpolate_figure, "steps"))
    p.add_argument(
        "--seed",
        type=int,
        default=api_default(aelab.inference.interpolate_figure, "seed"),
        help="for the prior points when no images are given",
    )
    label_argument(p, "the class to stay in")


cmd_interpolate.arguments = _interpolate_arguments
