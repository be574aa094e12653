"""Run folders written before training settings were split per family (tests/old_runs/, see its
README) still load: their settings, their weights and the same outputs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import aelab
from aelab.config_files import FLAT

OLD = Path(__file__).parent / "old_runs"
RUNS = sorted(p.name for p in OLD.iterdir() if p.is_dir())


@pytest.fixture
def old_runs(tmp_path) -> Path:
    """A copy: reading a run must not need to write, but a test must not risk the fixtures."""
    shutil.copytree(OLD, tmp_path / "old_runs")
    return tmp_path / "old_runs"


@pytest.mark.parametrize("name", RUNS)
def test_an_old_run_folders_settings_load_as_its_familys_with_the_values_it_recorded(old_runs, name):
    recorded = json.loads((old_runs / name / "config.json").read_text())["train"]
    settings = aelab.Run(old_runs / name).config.train
    assert type(settings) is aelab.settings.settings_classes()[aelab.model_info(name.removesuffix("-flat"))["family"]]
    kept = json.loads(json.dumps(settings.to_json()))  # as config.json writes them
    assert {key: recorded[key] for key in kept if key in recorded} == {
        key: kept[key] for key in recorded if key in kept
    }
    assert set(recorded) - set(kept) <= set(FLAT)  # what was dropped is the old record's, never used by this family
    if name == "ae-classifier":
        assert settings.labelled == 0.5 and settings.loss_weights == {"recon": 1.0, "label": 0.01}


def test_an_old_flat_record_keeps_only_what_its_family_has(old_runs):
    flat = aelab.Run(old_runs / "dense-flat").config.train
    assert flat == aelab.Run(old_runs / "dense").config.train
    assert "kl_weight" in json.loads((old_runs / "dense-flat" / "config.json").read_text())["train"]


def test_old_gan_runs_get_the_recipe_their_model_trained_by():
    """The recipe was the model class's (nets/gan.py) and is now GANSettings': an old run's
    config.json has none of it, so each gets its model's own."""
    gan, sn = (aelab.Run(OLD / name).config.train for name in ("gan", "gan-sn"))

    def recipe(settings):
        return settings.objective, settings.adam_betas, settings.clip_value, settings.effective_label_noise

    assert recipe(gan) == ("bce", (0.5, 0.999), 1.0, 0.05)
    assert recipe(sn) == ("hinge", (0.0, 0.9), None, 0.0)
    assert gan.d_lr == 2e-4 and sn.d_lr == 8e-4


def test_old_runs_give_the_outputs_they_gave_when_written(old_runs):
    expected = np.load(OLD / "expected.npz")
    x = aelab.load_data("mnist-sample").x_test[:4]
    np.testing.assert_allclose(aelab.reconstruct(old_runs / "dense", x), expected["dense"], atol=1e-6)
    for name in ("gan", "gan-sn"):
        np.testing.assert_allclose(
            aelab.sample(old_runs / name, 4, seed=1), expected[name.replace("-", "_")], atol=1e-6
        )
