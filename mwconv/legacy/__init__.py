"""tf.keras 2.x (and Keras 2) model configs, translated into Keras 3 ones.

Keras 3 refuses much of what tf-keras 2.x writes: arguments it dropped
(``groups`` on depthwise convolutions, ``time_major`` on RNNs), layer names
with ``/``, raw TensorFlow ops recorded as ``TFOpLambda`` layers, nested
Sequential models called on a new input. :func:`translate` rewrites a legacy
``model_config`` so Keras 3 builds it in safe mode, and says what it changed.
Nothing from the file is ever executed: ``Lambda`` layers are refused.

>>> t = translate(legacy_config)              # doctest: +SKIP
>>> t.renamed                                 # Keras 3 name -> the file's name
{'conv1_conv': 'conv1/conv'}
"""

from mwconv.legacy.translate import Translation, keras3_name, summarize, translate

__all__ = ["Translation", "keras3_name", "summarize", "translate"]
