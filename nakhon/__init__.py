"""Nakhon (นคร): an open City Data Platform for Thailand's smart cities."""

__version__ = "0.1.0"
