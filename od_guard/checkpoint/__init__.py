"""Reading checkpoints without TensorFlow: paths, files, tensor bundles, object
graphs, Keras weight files, key syntax, kinds of saved value, and the inventory
every other layer works from.

At import, these modules need only the standard library and `od_guard.errors`,
so `od-guard inspect`, `diff`, `lint` and `check --static` start in
milliseconds and work where TensorFlow is absent. Third-party readers are
imported on first use: cramjam for snappy-compressed index blocks, protobuf
with TensorBoard's bundled TF protos for a fully parsed object graph, h5py for
Keras files. TensorFlow, Keras and the OD API are never imported (enforced by
import-linter), with one exception: `fileio` borrows TensorFlow's gfile for
URIs no other reader serves (``gs://``, ``s3://`` ...), on first use.
"""
