"""vulnwatch: continuous vulnerability monitoring for container images."""

__version__ = "0.1.0"
