"""The pure-Python index reader agrees with TensorFlow on every fixture."""

from __future__ import annotations

import pytest

from od_guard.checkpoint import inventory
from od_guard.checkpoint import tensor_bundle

from conftest import tf_listing

FIXTURES = [
  "keras_tf_checkpoint",
  "tf1_checkpoint",
  pytest.param("odapi_checkpoint", marks=pytest.mark.odapi),
]


def _ours(prefix: str) -> dict[str, tuple[tuple[int, ...], str]]:
  index = tensor_bundle.read_index(prefix + ".index")
  return {e.key: (e.shape, e.dtype) for e in index.entries}


@pytest.mark.parametrize("fixture", FIXTURES)
def test_index_matches_tf_list_variables(fixture, request):
  prefix = request.getfixturevalue(fixture)
  assert _ours(prefix) == tf_listing(prefix)


def test_saved_model_variables_match_tf_list_variables(saved_model_dir):
  prefix = saved_model_dir + "/variables/variables"
  assert _ours(prefix) == tf_listing(prefix)


def test_header_reports_one_shard_version_1(keras_tf_checkpoint):
  header = tensor_bundle.read_index(keras_tf_checkpoint + ".index").header
  assert (header.num_shards, header.big_endian, header.version) == (1, False, 1)


def test_object_graph_string_matches_tf(keras_tf_checkpoint, tf):
  index = tensor_bundle.read_index(keras_tf_checkpoint + ".index")
  entry = next(e for e in index.entries if e.key == inventory.OBJECT_GRAPH_KEY)
  ours = tensor_bundle.read_string_scalar(keras_tf_checkpoint, entry, 1)
  theirs = tf.train.load_checkpoint(keras_tf_checkpoint).get_tensor(inventory.OBJECT_GRAPH_KEY)
  assert ours == theirs


def test_entry_sizes_match_dtype_and_shape(keras_tf_checkpoint):
  for e in tensor_bundle.read_index(keras_tf_checkpoint + ".index").entries:
    if e.dtype != "string":
      n = 1
      for d in e.shape:
        n *= d
      assert e.size == n * tensor_bundle.DTYPE_SIZES[e.dtype], e.key


if __name__ == "__main__":
  import sys

  sys.exit(pytest.main([__file__, "-q"]))
