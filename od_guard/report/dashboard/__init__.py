"""The od_guard TensorBoard dashboard: a dynamic plugin that renders reports.

`metadata` (the plugin's name, its summary metadata), `summary` (writing the
reports as summaries the plugin owns, with or without TensorFlow), `views`
(pure transforms of report JSON into what the routes serve), `plugin` (the
routes, reading through TensorBoard's data provider) and `static/` (the ES
module and its stylesheet). Imports no TensorFlow, except `summary` on the
tf.summary path.
"""
