"""Deep-clustering training (Hershey et al. 2016) with DS, BPD or RPD targets (Tzinis et al. 2019)."""

# pyproject.toml maps the folder trainer/ to spatialdc.trainer; nothing installs a bare "trainer"
if __name__ != "spatialdc.trainer":
    raise ImportError(f"import spatialdc.trainer, not {__name__}: the project's packages live in the spatialdc "
                      f"namespace (pip install -e . installs it)")
