"""The modality-neutral core: what every zoo of networks shares, whatever the networks compute.

``spec`` (the NetworkSpec protocol and the registry of kinds), ``zoo`` (zoos on disk), ``training`` (the batched
Adam, the schedule, checkpoints), ``latents`` (latent files, interpolation, train/val/test splits), ``spaces``
(space folders on disk), ``nets`` (the small MLP builder) and ``measure`` (set IoU, metric summaries). It imports
only the foundation below it (errors, io, runtime, weights); fields and classifiers import it, never each other.
"""
