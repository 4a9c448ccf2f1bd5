"""Predicting and judging a restore: what the live model asks for
(`live_graph`), what the checkpoint gives (`matching`), what that means
(`fingerprint`, `diagnosis`, `keras_layout`, `findings`), and whether training
may start (`policy`). `pipeline` runs these steps in one order for every
integration; `decide` holds every rule that turns findings into a verdict,
`codes` every finding code. May import `od_guard.checkpoint`. TensorFlow only
on use, inside the functions of the modules that touch live objects:
`live_graph`, `replica_values` and `consensus`.
"""
