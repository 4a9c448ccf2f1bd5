"""The report of a restore check and its renderings: the record (JSON schema
`od_guard.preflight/1`), terminal text, Markdown, TensorBoard. Knows nothing of
the OD API or Keras: may import `od_guard.restore` and `od_guard.checkpoint`.
"""
