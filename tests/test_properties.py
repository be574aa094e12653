"""Property-based tests (hypothesis): config.json and the data loaders on generated bad input
never give a traceback, only a one-line :class:`AelabError`, and write nothing."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aelab.data import load_data
from aelab.errors import AelabError
from aelab.families import settings_classes
from aelab.runs import Run

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**6), 10**6) | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)
VALID = {
    "model": "conv-resize",
    "params": {"channels": [16, 8, 8]},
    "train": {"lr": 0.001, "epochs": 2},
    "data": "mnist-sample",
    "data_dir": None,
    "input_shape": [1, 28, 28],
}
KEYS = st.sampled_from(
    ["model", "params", "train", "data", "data_dir", "input_shape", "user_params", "seed", "lr_patience"]
)
SETTINGS = st.sampled_from(sorted({name for c in settings_classes().values() for name in c.names()}))
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def listing(folder: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def config_only_fails_cleanly(config_text: str) -> None:
    folder = Path(tempfile.mkdtemp())
    try:
        (folder / "config.json").write_text(config_text)
        before = listing(folder)
        try:
            config = Run(folder).config
            Run(folder).build_model()
            assert config.model
        except AelabError as error:
            assert "\n" not in str(error).strip()
        assert listing(folder) == before
    finally:
        shutil.rmtree(folder)


@FAST
@given(key=KEYS, value=JSON)
def test_config_with_any_value_at_a_top_level_key(key, value):
    config_only_fails_cleanly(json.dumps({**VALID, key: value}))


@FAST
@given(key=SETTINGS, value=JSON)
def test_config_with_any_value_for_a_setting(key, value):
    config_only_fails_cleanly(json.dumps({**VALID, "train": {key: value}}))


@FAST
@given(key=st.sampled_from(["in_channels", "in_size", "channels", "act", "block", "batch_norm", "nope"]), value=JSON)
def test_config_with_any_value_for_a_parameter(key, value):
    config_only_fails_cleanly(json.dumps({**VALID, "params": {key: value}}))


@FAST
@given(text=st.text(max_size=60) | st.binary(max_size=60).map(lambda b: b.decode("latin-1")))
def test_config_of_arbitrary_text(text):
    config_only_fails_cleanly(text)


NAMES = st.sampled_from(["x.npy", "x.npz", "train-images-idx3-ubyte", "train-images-idx3-ubyte.gz", "a.png", "b.jpg"])


@FAST
@given(name=NAMES, payload=st.binary(max_size=300))
def test_data_loaders_on_random_bytes(name, payload):
    folder = Path(tempfile.mkdtemp())
    try:
        (folder / name).write_bytes(payload)
        before = listing(folder)
        try:
            load_data(None, folder)
        except AelabError as error:
            assert "\n" not in str(error).strip()
        assert listing(folder) == before
    finally:
        shutil.rmtree(folder)


ARRAYS = st.tuples(st.integers(0, 6), st.integers(0, 6), st.integers(0, 6), st.integers(0, 6)).flatmap(
    lambda shape: st.sampled_from([np.uint8, np.float32, np.float64, np.int64, np.bool_]).map(
        lambda dtype: (shape[: np.random.default_rng(sum(shape)).integers(1, 5)], dtype)
    )
)


@FAST
@given(spec=ARRAYS, scale=st.sampled_from([1.0, 255.0, -1.0, float("nan")]), labels=st.integers(-1, 8))
def test_array_loader_on_generated_arrays(spec, scale, labels):
    shape, dtype = spec
    folder = Path(tempfile.mkdtemp())
    try:
        with np.errstate(invalid="ignore"):  # NaN cast to an integer type: garbage pixels, as wanted
            x = (np.random.default_rng(0).random(shape) * scale).astype(dtype)
        arrays = {"x": x} if labels < 0 else {"x": x, "y": np.arange(labels)}
        np.savez(folder / "data.npz", **arrays)
        before = listing(folder)
        try:
            data = load_data(None, folder)
            assert data.train.min() >= 0 and data.train.max() <= 1
        except AelabError as error:
            assert "\n" not in str(error).strip()
        assert listing(folder) == before
    finally:
        shutil.rmtree(folder)
