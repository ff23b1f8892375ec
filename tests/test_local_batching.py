"""Replies decoded together (assistant/local_batch.py, assistant/local_decoder.py) on the tiny model: each row's
reply is the one it gets alone, users' replies come before shadow replies, and the queue is bounded."""

import time
from dataclasses import replace

import pytest

from assistant.completion import ProviderBusy
from assistant.local_decoder import Decoder, Row

WORRIES = ["I cannot sleep at night", "My exams start tomorrow and I feel sick", "hello",
           "Work has been heavy this week and my manager keeps adding more",
           "I argued with my sister", "Nothing helps", "What can I do when I panic on the bus?", "thanks"]
NO_DEADLINE = 3600.0


def conversation(text):
    return [{"role": "user", "content": text}]


@pytest.fixture
def loaded(settings, tiny_model_dir):
    """The tiny model in fp32, greedy: the arithmetic of a row does not depend on its neighbours."""
    from assistant.local_model import LoadedModel

    return LoadedModel.load("tiny", tiny_model_dir, replace(settings.local, quantize=False, temperature=0.0,
                                                            max_new_tokens=24))


def drain(row):
    """The items a row was given so far, as (kind, value) pairs."""
    items = []
    while not row.items.empty():
        items.append(row.items.get())
    return items


def replies_batched(loaded, texts, join_every=3):
    """Each text's reply ids, decoded in one batch that a new row joins every ``join_every`` steps."""
    batch = loaded.batch()
    rows = [Row(loaded, conversation(t), time.monotonic() + NO_DEADLINE) for t in texts]
    waiting, items = list(rows), {id(row): [] for row in rows}
    steps = 0
    while waiting or batch.rows:
        if waiting and steps % join_every == 0:
            batch.join(waiting.pop(0))
        batch.step()
        steps += 1
        for row in rows:
            items[id(row)] += drain(row)
    return [[v for kind, v in items[id(row)] if kind == "token"] for row in rows]


def test_greedy_replies_decoded_together_are_each_the_reply_alone(loaded):
    alone = [loaded.tokenizer.encode(loaded.reply(conversation(t), time.monotonic() + NO_DEADLINE)[0])
             for t in WORRIES]
    together = replies_batched(loaded, WORRIES)

    assert len({tuple(r) for r in together}) == len(WORRIES)  # distinct replies: cross-talk would show
    assert [loaded.text(ids) for ids in together] == [loaded.tokenizer.decode(ids) for ids in alone]


def first_step_logits(settings, model_dir, quantize, together):
    """Each worry's logits at the first step decoded after its prompt (the prompt itself always runs alone), from
    one batch of all of them or from a batch of its own."""
    import torch

    from assistant.local_model import LoadedModel

    model = LoadedModel.load("tiny", model_dir, replace(settings.local, quantize=quantize, temperature=0.0))
    seen = []
    step = model.step
    model.step = lambda *args: seen.append(step(*args)) or seen[-1]  # a spy: records each step's logits
    batches = [model.batch()] if together else [model.batch() for _ in WORRIES]
    for i, text in enumerate(WORRIES):
        batches[0 if together else i].join(Row(model, conversation(text), time.monotonic() + NO_DEADLINE))
    for batch in batches:
        batch.step()
    return torch.cat(seen)


def test_int8_logits_decoded_together_differ_from_alone_by_less_than_int8_differs_from_fp32(settings, tiny_model_dir):
    # Dynamic int8 quantisation scales each linear layer's input by its largest value over the whole batch, so a
    # row's arithmetic depends on its neighbours (fp32 rows do not: the test above) and a greedy text may part
    # from the one alone at a near-tie. The bound: batching costs less accuracy than int8 itself does against
    # fp32 (on the tiny model, measured: largest difference 0.58 against 6.3, mean 0.12 against 0.48).
    fp32 = first_step_logits(settings, tiny_model_dir, quantize=False, together=False)
    alone = first_step_logits(settings, tiny_model_dir, quantize=True, together=False)
    together = first_step_logits(settings, tiny_model_dir, quantize=True, together=True)

    batching, quantising = (together - alone).abs(), (alone - fp32).abs()
    assert batching.max() < quantising.max() / 2 and batching.mean() < quantising.mean() / 2
    assert (together.argmax(-1) == alone.argmax(-1)).all()


def test_a_row_whose_reader_left_leaves_the_batch_at_the_next_step(loaded):
    batch = loaded.batch()
    rows = [Row(loaded, conversation(t), time.monotonic() + NO_DEADLINE) for t in WORRIES[:3]]
    for row in rows:
        batch.join(row)
    rows[1].cancelled.set()

    batch.step()

    assert batch.rows == [rows[0], rows[2]] and batch.cache.layers[0].keys.shape[0] == 2


def long_row(loaded, text="hello", background=False):
    return Row(loaded, conversation(text), time.monotonic() + NO_DEADLINE, background)


def wait_for_token(row):
    """Block until the row has its prompt and first token."""
    kinds = [row.items.get(timeout=60)[0] for _ in range(2)]
    assert kinds == ["prompt", "token"]


@pytest.fixture
def long_loaded(settings, tiny_model_dir):
    """Replies far longer than any test waits for: rows stay in the batch until they are stopped."""
    from assistant.local_model import LoadedModel

    return LoadedModel.load("tiny", tiny_model_dir, replace(settings.local, temperature=0.0, max_new_tokens=1900))


def test_past_the_queue_bound_a_reply_is_refused_and_a_withdrawn_one_frees_its_place(long_loaded):
    decoder = Decoder("test-decoder", max_batch=1, max_queue=1)
    try:
        running = decoder.submit(long_row(long_loaded))
        wait_for_token(running)
        waiting = decoder.submit(long_row(long_loaded))

        with pytest.raises(ProviderBusy):
            decoder.submit(long_row(long_loaded))
        assert decoder.withdraw(waiting) is True  # it never had a place
        assert decoder.withdraw(running) is False  # it had one, and leaves it at the next step
        after = decoder.submit(long_row(long_loaded))
        wait_for_token(after)
        assert decoder.status()["left_early"] == 1
    finally:
        decoder.close()


def test_a_user_reply_takes_the_place_of_a_shadow_reply(long_loaded):
    decoder = Decoder("test-decoder", max_batch=1, max_queue=1)
    try:
        shadow = decoder.submit(long_row(long_loaded, background=True))
        wait_for_token(shadow)
        with pytest.raises(ProviderBusy):  # a shadow reply never waits
            decoder.submit(long_row(long_loaded, background=True))

        user = decoder.submit(long_row(long_loaded))

        wait_for_token(user)
        last_kind, last = drain(shadow)[-1]
        assert last_kind == "error" and isinstance(last, ProviderBusy)
    finally:
        decoder.close()


@pytest.mark.parametrize("spread", [4.0, 1.0])  # a peaked distribution (the nucleus among the candidates), a flat one
def test_top_p_draws_from_the_tokens_transformers_keeps(settings, tiny_model_dir, spread):
    import torch
    from transformers.generation.logits_process import TopPLogitsWarper

    from assistant.local_model import NUCLEUS_CANDIDATES, LoadedModel

    loaded = LoadedModel.load("tiny", tiny_model_dir, replace(settings.local, temperature=0.7, top_p=0.9))
    scores = torch.randn(1, 4 * NUCLEUS_CANDIDATES, generator=torch.Generator().manual_seed(1)) * spread

    ids, weights = loaded.nucleus(scores)

    kept = torch.isfinite(TopPLogitsWarper(0.9)(None, scores.clone()))[0].nonzero()[:, 0]
    assert sorted(ids.tolist()) == kept.tolist()
    assert torch.allclose(weights / weights.sum(), torch.softmax(scores[0, ids], dim=-1), atol=1e-6)
    assert (len(ids) < NUCLEUS_CANDIDATES) == (spread == 4.0)  # both ways are taken
