"""Evaluation: embeddings -> K-means -> binary masks -> inverse STFT -> BSS Eval, beside oracle masks."""

# pyproject.toml maps the folder eval/ to spatialdc.eval; nothing installs a bare "eval"
if __name__ != "spatialdc.eval":
    raise ImportError(f"import spatialdc.eval, not {__name__}: the project's packages live in the spatialdc "
                      f"namespace (pip install -e . installs it)")


def __getattr__(name: str):
    """``from spatialdc.eval import Separator`` without importing torch for every user of this package."""
    if name == "Separator":
        from .separator import Separator

        return Separator
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
