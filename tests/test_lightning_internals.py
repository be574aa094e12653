"""The Lightning internals aelab overrides, checked: no public hook writes a checkpoint both on a
time interval and at the end of every epoch and training, nor keeps an existing metrics.csv on a
resume (``aelab.trainer``). Where Lightning renames or reshapes one of these parts in an
upgrade, this file fails, instead of a run silently losing checkpoints or its log."""

from __future__ import annotations

import inspect

import lightning as L
from lightning.fabric.loggers.csv_logs import _ExperimentWriter
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.trainer.connectors.checkpoint_connector import _CheckpointConnector

from aelab.trainer import AppendingCSVLogger, RunCheckpoint, _AppendingWriter


def parameters(function) -> list[str]:
    return list(inspect.signature(function).parameters)


def test_checkpoints_are_written_through_the_private_method_runcheckpoint_overrides():
    assert parameters(ModelCheckpoint._save_checkpoint) == parameters(RunCheckpoint._save_checkpoint)
    assert parameters(ModelCheckpoint._save_checkpoint) == ["self", "trainer", "filepath"]
    source = inspect.getsource(ModelCheckpoint)
    # every save (top-k, last, on epoch end) goes through _save_checkpoint, whose bookkeeping
    # RunCheckpoint repeats for a checkpoint it keeps in memory
    assert source.count("self._save_checkpoint(trainer") >= 2
    assert "self._last_global_step_saved = " in source and "self._last_checkpoint_saved = " in source
    assert "def _should_skip_saving_checkpoint" in source and "self._last_global_step_saved" in source
    # the checkpoint kept in memory is what the trainer would write
    assert "self._checkpoint_connector = _CheckpointConnector(" in inspect.getsource(L.Trainer.__init__)
    assert parameters(_CheckpointConnector.dump_checkpoint) == ["self", "weights_only"]


def test_the_csv_log_is_kept_through_the_private_method_the_writer_overrides():
    assert _ExperimentWriter in _AppendingWriter.__mro__
    assert parameters(_ExperimentWriter._check_log_dir_exists) == ["self"]
    assert "self._check_log_dir_exists()" in inspect.getsource(_ExperimentWriter.__init__)
    assert "self.metrics_keys" in inspect.getsource(_ExperimentWriter)  # the header the resumed log appends under
    assert "self._experiment" in inspect.getsource(AppendingCSVLogger.__mro__[1])


def test_the_wandb_loggers_parts_aelab_reads_are_there():
    source = inspect.getsource(WandbLogger.__init__)
    assert "self._wandb_init" in source and "self._experiment" in source
