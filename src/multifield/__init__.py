"""multifield: multi-field, multi-label text classification with recurrent attention, on Keras 3.

Importing the package selects the JAX backend for Keras unless the user has chosen one with
``KERAS_BACKEND``; this must happen before Keras is imported. (``~/.keras/keras.json`` is not read as a
choice: Keras writes ``"backend": "tensorflow"`` there by itself on first import.) It also sets XLA's CPU
scheduler for recurrent models (``multifield.xla_flags``), which XLA reads when JAX starts its backend.
"""

import os

from multifield.version import __version__
from multifield.xla_flags import set_xla_cpu_flags

os.environ.setdefault("KERAS_BACKEND", "jax")
set_xla_cpu_flags()


def __getattr__(name):
    # The estimator pulls in Keras and the data stack; keep `import multifield` light for the CLI's --help.
    if name == "MultiFieldClassifier":
        from multifield.classifier import MultiFieldClassifier

        return MultiFieldClassifier
    if name == "load":
        from multifield.classifier import load

        return load
    raise AttributeError(f"module 'multifield' has no attribute {name!r}")


__all__ = ["MultiFieldClassifier", "load", "__version__"]
