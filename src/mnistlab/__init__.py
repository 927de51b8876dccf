"""mnistlab: reproducible, honest and fast experiments with tiny CNNs on MNIST."""

__version__ = "0.1.0"
