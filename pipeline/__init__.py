"""Mixture rendering for spatial deep clustering: corpus -> manifest -> specs -> HDF5 shards."""

# pyproject.toml maps the folder pipeline/ to spatialdc.pipeline; nothing installs a bare "pipeline"
if __name__ != "spatialdc.pipeline":
    raise ImportError(f"import spatialdc.pipeline, not {__name__}: the project's packages live in the spatialdc "
                      f"namespace (pip install -e . installs it)")

__version__ = "0.1.0"
