"""The project's PyTorch reference of WeNet's ASR model (see ../README.md)."""

from .model import WenetModel, from_config, load_model_dir  # noqa: F401
