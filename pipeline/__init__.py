"""Mixture rendering for spatial deep clustering: corpus -> manifest -> specs -> HDF5 shards."""

__version__ = "0.1.0"
