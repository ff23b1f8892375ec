"""Tokenising examples: labels on the assistant reply only, truncation, batching."""

import random

from trainer.tokens import IGNORE, collate, length_grouped_batches, render

CONVERSATION = [
    {"role": "system", "content": "Be kind."},
    {"role": "user", "content": "I cannot sleep."},
    {"role": "assistant", "content": "Try breathing slowly."},
    {"role": "user", "content": "Anything else?"},
    {"role": "assistant", "content": "Please contact a professional."},
]


def test_only_the_final_reply_and_its_end_token_are_labelled(tiny_tokenizer):
    features = render(tiny_tokenizer, CONVERSATION, 512)

    labelled = [token for token in features.labels if token != IGNORE]
    assert tiny_tokenizer.decode(labelled) == "Please contact a professional.<|im_end|>\n"
    assert features.input_ids[-len(labelled):] == labelled
    assert all(label == IGNORE for label in features.labels[:-len(labelled)])
    # the prompt part is exactly what generation would be given
    prompt = tiny_tokenizer.apply_chat_template(CONVERSATION[:-1], tokenize=False, add_generation_prompt=True)
    assert tiny_tokenizer.decode(features.input_ids[:-len(labelled)]) == prompt


def test_long_examples_lose_their_oldest_exchange_first(tiny_tokenizer):
    whole = render(tiny_tokenizer, CONVERSATION, 512)
    shorter = render(tiny_tokenizer, CONVERSATION, len(whole.input_ids) - 1)

    text = tiny_tokenizer.decode(shorter.input_ids)
    assert "I cannot sleep." not in text and "Anything else?" in text
    assert tiny_tokenizer.decode([t for t in shorter.labels if t != IGNORE]).startswith("Please contact")


def test_a_reply_longer_than_the_window_is_cut(tiny_tokenizer):
    messages = CONVERSATION[:2] + [{"role": "assistant", "content": "slowly " * 200}]

    features = render(tiny_tokenizer, messages, 64)

    assert len(features.input_ids) == 64 and features.supervised > 0


def test_length_grouped_batches_cover_every_example_within_the_token_budget():
    lengths = [random.Random(i).randint(10, 300) for i in range(200)]

    batches = length_grouped_batches(lengths, 1024, random.Random(0))

    assert sorted(i for batch in batches for i in batch) == list(range(200))
    assert all(max(lengths[i] for i in batch) * len(batch) <= 1024 or len(batch) == 1 for batch in batches)
    padded = sum(max(lengths[i] for i in b) * len(b) for b in batches)
    assert padded < 1.25 * sum(lengths)  # grouping keeps padding small


def test_collate_pads_on_the_right_and_masks_padding(tiny_tokenizer):
    short = render(tiny_tokenizer, CONVERSATION[:3], 512)
    long = render(tiny_tokenizer, CONVERSATION, 512)

    batch = collate([short, long], tiny_tokenizer.pad_token_id)

    n, width = len(short.input_ids), batch["input_ids"].shape[1]
    assert batch["input_ids"].shape == (2, 128)  # the longest (79 tokens), rounded up to a multiple of 64
    assert len(long.input_ids) == 79
    assert batch["attention_mask"][0].tolist() == [1] * n + [0] * (width - n)
    assert batch["attention_mask"][1].tolist() == [1] * 79 + [0] * (width - 79)
    assert (batch["labels"][0, n:] == IGNORE).all() and (batch["input_ids"][1, 79:] == tiny_tokenizer.pad_token_id).all()
