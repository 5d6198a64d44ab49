"""Triton Python-backend models of the cascade repository (each file becomes ``<model>/1/model.py``).

They run inside Triton's Python stub, in the serving environment (numpy < 2), and import only mtnet's
NumPy/OpenCV/PIL modules (``mtnet.decode``, ``mtnet.data.preprocess``, ``mtnet.cascade.crops`` /
``relabel``), the same code the Python ``Cascade`` runs. ``common`` is shared by all of them.
"""
