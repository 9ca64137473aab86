"""Moving models between the backends.

* ``copy_weights(src, dst)`` (``weights.py``): an embedding or an encoder, torch <-> Keras.
* ``python -m encoders.convert RUN_DIR`` (``models.py``): a whole trained classifier, checked
  on a sample batch before it is written.
"""
from encoders.convert.weights import copy_weights, keras_encoder_like, torch_encoder_like

__all__ = ["copy_weights", "keras_encoder_like", "torch_encoder_like"]
