"""`python -m assistant.safety`: fit the safety classifiers and keep them beside the ONNX model (build time)."""

from assistant.safety.screener import Screener
from config import cli_settings

if __name__ == "__main__":
    screener = Screener.load(cli_settings().embeddings_dir)
    raise SystemExit(None if screener.messages is not None else f"not fitted: {screener.semantic_error}")
