"""Image-classifier zoos: architectures, data, zoo training and their weight space."""
