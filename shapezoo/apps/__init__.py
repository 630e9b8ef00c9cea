"""What is built from both modalities: the demo, its HTML report and the report's charts."""
