"""The field modality: occupancy fields of 3D shapes, from meshes to batched fits, zoos, meshes back and their
weight space (``fields.space``). Modules import only those listed before them in ``tests/test_architecture.py``."""
