"""Using a trained run: ``load_run`` (``trained_run``), ``predict``/``evaluate`` (``evaluation``,
``running_evaluation``), ``export`` (ONNX / SavedModel), the device a run is used on (``devices``)
and the command line (``cli``: ``python -m encoders COMMAND``)."""
