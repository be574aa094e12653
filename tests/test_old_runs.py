"""Run folders written before training settings were split per family (tests/old_runs/, see its
README) still load: their settings, their weights and the same outputs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import aelab

OLD = Path(__file__).parent / "old_runs"
RUNS = sorted(p.name for p in OLD.iterdir() if p.is_dir())


@pytest.fixture
def old_runs(tmp_path) -> Path:
    """A copy: reading a run must not need to write, but a test must not risk the fixtures."""
    shutil.copytree(OLD, tmp_path / "old_runs")
    return tmp_path / "old_runs"


@pytest.mark.parametrize("name", RUNS)
def test_an_old_run_folders_settings_load_with_the_values_it_recorded(old_runs, name):
    recorded = json.loads((old_runs / name / "config.json").read_text())["train"]
    settings = aelab.Run(old_runs / name).config.train
    kept = settings.to_json()
    for key, value in recorded.items():
        if key in kept:
            assert kept[key] == (list(value) if isinstance(value, tuple) else value) or (
                key == "logger" and list(kept[key]) == value
            ), key


def test_an_old_flat_record_keeps_only_what_its_family_has(old_runs):
    flat = aelab.Run(old_runs / "dense-flat").config.train
    assert flat == aelab.Run(old_runs / "dense").config.train


def test_old_runs_give_the_outputs_they_gave_when_written(old_runs):
    expected = np.load(OLD / "expected.npz")
    x = aelab.load_data("mnist-sample").x_test[:4]
    np.testing.assert_allclose(aelab.reconstruct(old_runs / "dense", x), expected["dense"], atol=1e-6)
    for name in ("gan", "gan-sn"):
        np.testing.assert_allclose(
            aelab.sample(old_runs / name, 4, seed=1), expected[name.replace("-", "_")], atol=1e-6
        )
