"""Image fields: one SIREN per image over pixel coordinates (the weight-space benchmark's INRs), fitted in batches,
stored as zoos of kind ``image`` and probed from their weights."""
