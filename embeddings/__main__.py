"""python -m embeddings backfill: embed every remembered message still waiting, with a progress bar.

The web workers embed remembered messages in the background as they arrive; this drains a
backlog left while the embedding model was missing or memory was off, or a large one at once.
"""

from __future__ import annotations

import argparse
import sys

from tqdm import tqdm

from config import cli_settings
from embeddings.indexer import Indexer
from embeddings.model import load_embedder
from embeddings.vectors import VectorStore
from storage.migrate import migrated_engine


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run it; the exit code says how it went."""
    parser = argparse.ArgumentParser(prog="python -m embeddings", description="Embeddings of remembered messages.")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("backfill", help="embed the remembered messages that have no embedding yet")
    parser.parse_args(argv)
    settings = cli_settings()
    embedder, error = load_embedder(settings.embeddings_dir)
    if embedder is None:
        print(f"error: the sentence-embedding model did not load: {error}", file=sys.stderr)
        return 1
    engine = migrated_engine(settings.database_url)
    try:
        store = VectorStore(engine)
        with tqdm(total=store.counts()["backlog"], unit="msg", desc=f"Embedding ({store.backend})") as bar:
            stored = Indexer(store, embedder).drain(bar.update)
        print(f"{stored} messages embedded; {store.counts()['backlog']} still waiting")
    finally:
        engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
