"""`python -m assistant.safety`: fit the safety classifiers and keep them beside the ONNX model (build time)."""

import logging

from assistant.safety.screener import Screener
from config import Settings

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    screener = Screener.load(Settings.from_env().embeddings_dir)
    raise SystemExit(None if screener.messages is not None else f"not fitted: {screener.semantic_error}")
