"""The sentence embedder: a text's vector does not depend on the texts embedded with it."""

import numpy as np

from config import Settings
from embeddings.model import load_embedder


def test_a_text_embeds_the_same_alone_and_among_texts_of_other_lengths():
    embedder, error = load_embedder(Settings().embeddings_dir)
    assert embedder is not None, error
    texts = ["", "ok", "I slept badly again last night.", "What could I try tonight?",
             "I have been feeling low since the move, and work has been a lot. " * 3,
             "word " * 400]  # past the model's 256 word pieces: cut, not an error

    together = embedder.embed(texts)
    alone = np.stack([embedder.embed([text])[0] for text in texts])

    assert together.shape == (len(texts), 384)
    np.testing.assert_allclose(np.linalg.norm(together, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(together, alone, atol=1e-5)
    assert embedder.embed([]).shape == (0, 384)
