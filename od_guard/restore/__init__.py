"""Predicting and judging a restore: what the live model asks for
(`live_graph`), what the checkpoint gives (`matching`), what that means
(`fingerprint`, `diagnosis`, `keras_layout`, `findings`), and whether training
may start (`policy`). `pipeline` runs these steps in one order for every
integration. May import `od_guard.checkpoint`; TensorFlow only inside
`live_graph`, on use.
"""
