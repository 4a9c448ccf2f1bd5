"""Every way a user names a checkpoint resolves to the right place, and says how."""

from __future__ import annotations

import os
import shutil

import pytest

from od_guard import errors
from od_guard.checkpoint import paths as checkpoint_path

from conftest import BITEWING
from conftest import SIGN_LANGUAGE
from conftest import needs_realworld


def test_prefix_resolves_to_itself(keras_tf_checkpoint):
  r = checkpoint_path.resolve(keras_tf_checkpoint)
  assert (r.path, r.container, r.notes) == (keras_tf_checkpoint, checkpoint_path.TF_CHECKPOINT, ())


def test_index_file_resolves_to_prefix_and_says_so(keras_tf_checkpoint):
  r = checkpoint_path.resolve(keras_tf_checkpoint + ".index")
  assert r.path == keras_tf_checkpoint
  assert "is an index file: used the checkpoint prefix" in r.notes[0]


def test_data_file_resolves_to_prefix_and_says_so(keras_tf_checkpoint):
  r = checkpoint_path.resolve(keras_tf_checkpoint + ".data-00000-of-00001")
  assert r.path == keras_tf_checkpoint
  assert "is a data shard" in r.notes[0]


def test_directory_resolves_through_state_file(keras_tf_checkpoint):
  r = checkpoint_path.resolve(os.path.dirname(keras_tf_checkpoint))
  assert r.path == keras_tf_checkpoint
  assert "read the state file" in r.notes[0]


def test_state_file_with_foreign_absolute_path_falls_back_beside_it(tmp_path, keras_tf_checkpoint):
  src = os.path.dirname(keras_tf_checkpoint)
  for name in os.listdir(src):
    shutil.copy(os.path.join(src, name), tmp_path)
  (tmp_path / "checkpoint").write_text(
    'model_checkpoint_path: "/home/someone/train/ckpt-1"\n'
    'all_model_checkpoint_paths: "/home/someone/train/ckpt-1"\n'
  )
  r = checkpoint_path.resolve(str(tmp_path))
  assert r.path == str(tmp_path / "ckpt-1")
  assert "which is not here (written on another machine?)" in r.notes[-1]


@needs_realworld
def test_directory_without_state_file_uses_single_checkpoint():
  r = checkpoint_path.resolve(str(BITEWING / "checkpoint"))
  assert r.path == str(BITEWING / "checkpoint" / "ckpt-0")
  assert "its only checkpoint" in r.notes[0]


@needs_realworld
def test_directory_with_several_checkpoints_and_no_state_is_ambiguous(tmp_path):
  for n in (1, 2):
    shutil.copy(BITEWING / "checkpoint" / "ckpt-0.index", tmp_path / f"ckpt-{n}.index")
  with pytest.raises(errors.CheckpointNotFoundError, match="ambiguous") as e:
    checkpoint_path.resolve(str(tmp_path))
  assert "ckpt-2" in e.value.fix


@needs_realworld
def test_real_state_file_resolves():
  r = checkpoint_path.resolve(str(SIGN_LANGUAGE / "checkpoint"))
  assert r.path == str(SIGN_LANGUAGE / "checkpoint" / "ckpt-0")


def test_saved_model_directory_resolves_to_variables(saved_model_dir):
  r = checkpoint_path.resolve(saved_model_dir)
  assert (r.path, r.saved_model) == (os.path.join(saved_model_dir, "variables", "variables"), True)


@needs_realworld
def test_saved_model_without_pb_still_reads_variables():
  r = checkpoint_path.resolve(str(SIGN_LANGUAGE / "saved_model"))
  assert r.path.endswith("saved_model/variables/variables") and r.saved_model


def test_file_uri_resolves(keras_tf_checkpoint):
  r = checkpoint_path.resolve("file://" + keras_tf_checkpoint)
  assert r.path == "file://" + keras_tf_checkpoint


def test_keras2_h5_is_recognised(keras2_h5):
  assert checkpoint_path.resolve(keras2_h5).container == checkpoint_path.KERAS_H5


def test_keras3_files_are_recognised(keras3_files):
  weights, archive = keras3_files
  assert checkpoint_path.resolve(weights).container == checkpoint_path.KERAS_H5
  assert checkpoint_path.resolve(archive).container == checkpoint_path.KERAS_ARCHIVE


def test_placeholder_path_says_to_replace_it():
  with pytest.raises(errors.CheckpointNotFoundError) as e:
    checkpoint_path.resolve("PATH_TO_BE_CONFIGURED/checkpoint/ckpt-0")
  assert "PATH_TO_BE_CONFIGURED placeholder" in e.value.fix


def test_missing_path_lists_checkpoints_beside_it(keras_tf_checkpoint):
  wrong = os.path.join(os.path.dirname(keras_tf_checkpoint), "ckpt-9")
  with pytest.raises(errors.CheckpointNotFoundError) as e:
    checkpoint_path.resolve(wrong)
  assert "ckpt-1" in e.value.fix


if __name__ == "__main__":
  import sys

  sys.exit(pytest.main([__file__, "-q"]))
