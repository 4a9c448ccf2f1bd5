"""Naming conventions on saved variables: rules and the linter (`rules`),
enforcement at every save (`save_guard`), renaming a checkpoint's keys without
TensorFlow (`remap`), and converting TF1 name-based checkpoints
(`tf1_conversion`). May import `od_guard.checkpoint`, `od_guard.restore` and
`od_guard.report`.
"""
