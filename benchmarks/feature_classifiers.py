"""Make the feature classifier aelab ships for a dataset (src/aelab/classifiers/): the features
behind ``fd_classifier``.

    python benchmarks/feature_classifiers.py                    # Fashion-MNIST
    python benchmarks/feature_classifiers.py --replace          # make it again over the shipped one

Trains ``aelab.frechet.SmallClassifier`` on the dataset's training images as ``classifier_for``
would on a first run (3 epochs, seed 0, batch 128), but in float32 on any CPU: the classifier that
every machine measures with must not depend on the one that made it (bf16 on an AMX CPU gives
other weights). Writes its weights (safetensors) and info (JSON) under the stem ``classifier_key``
gives, where ``classifier_for`` looks before the user's cache, and prints the test accuracy and
the floor (real training images measured as samples, as every run's ``fd_classifier_floor``).
A shipped file is replaced only with ``--replace``: new weights change every ``fd_classifier``
measured on the dataset (``fd_classifier_id`` in metrics.json tells them apart).
"""

from __future__ import annotations

import argparse
import sys

from aelab import frechet
from aelab.data import load_data
from aelab.errors import AelabError
from aelab.progress import reporting

FLOOR_IMAGES = 10_000  # as sample_quality measures the floor of a run's 10,000 samples (the default)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="fashion-mnist", help="a labelled dataset name (default: fashion-mnist)")
    parser.add_argument("--replace", action="store_true", help="make it again over a shipped classifier")
    args = parser.parse_args(argv)
    try:
        data = load_data(args.data)
    except AelabError as error:  # a wrong name, or data that are not there
        print(f"feature_classifiers.py: {error}", file=sys.stderr)
        return 2
    if data.train_labels is None or data.test_labels is None:
        print(f"{args.data} has no labels, so no classifier to ship", file=sys.stderr)
        return 2
    stem, shipped = frechet.classifier_key(data), frechet.SHIPPED
    weights, info_path = shipped / f"{stem}.safetensors", shipped / f"{stem}.json"
    if (weights.exists() or info_path.exists()) and not args.replace:
        print(f"{weights} is shipped already; --replace makes it again (and changes fd_classifier)", file=sys.stderr)
        return 2
    model = frechet.SmallClassifier.for_data(data)
    with reporting("epoch"):
        info = frechet.train_classifier(model, data, precision="32")
        n = min(len(data.train), len(data.test), FLOOR_IMAGES)
        info["fd_floor"] = frechet.fd_floor(data.test, data.train, model, FLOOR_IMAGES)
    identity = frechet.store_classifier(model, info, shipped, stem)
    print(
        f"{args.data}: test accuracy {info['test_accuracy']:.4f} in {info['train_seconds']:.0f} s; the floor "
        f"(fd_classifier of {n:,} training images to the test images) {info['fd_floor']:.4f}; id {identity}"
    )
    print(f"wrote {weights} and {info_path.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
