"""Reading checkpoints without TensorFlow: paths, files, tensor bundles, object
graphs, Keras weight files, and the inventory every other layer works from.

Imports nothing but the standard library, numpy-free codecs and `od_guard.errors`
(enforced by import-linter): `od-guard inspect`, `diff`, `lint` and
`check --static` start in milliseconds and work where TensorFlow is absent.
The one exception is `fileio`'s fallback for URIs no other reader serves,
which borrows TensorFlow's gfile on first use.
"""
