"""colorkit plugin: the ``synth`` known-answer data set, the ``oracle`` reference and the
mode metrics (``mode_recall``, ``mode_precision``, ``coherence``) that use its metadata."""
