"""Helpers that make tiny, real OD API and Keras artefacts for tests, demos and
benchmarks. Nothing here is mocked: configs are real pipeline protos, data are
real TFRecords, models are built by the OD API's own model builder."""
