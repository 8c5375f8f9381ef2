"""``python -m spatialdc.trainer`` (and ``torchrun ... -m spatialdc.trainer``) is ``dctrain``."""

from .cli import main

main()
