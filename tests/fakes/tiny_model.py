"""A small random-weight Llama and a locally trained tokenizer with SmolLM2's chat template.

No network: the tokenizer is trained with `tokenizers` on a few sentences, the
model is built from a config. Saved to a folder that works as BASE_MODEL.
"""

from __future__ import annotations

from pathlib import Path

# SmolLM2-Instruct's ChatML template: no {% generation %} markers.
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\\n' }}"
    "{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CORPUS = [
    "I have been feeling anxious and I cannot sleep at night.",
    "Try breathing slowly: in for four, hold for four, out for four.",
    "You are a warm and supportive companion. Listen and reflect what you hear.",
    "What did the patient report about mood, sleep and appetite this week?",
    "It sounds like a hard week. What has helped you before when things felt heavy?",
    "Please contact a professional if things get worse. You deserve support.",
    "system user assistant You said hello thanks okay yes no maybe today tomorrow",
]


def build_tokenizer(folder: Path | None = None, vocab_size: int = 400):
    """A byte-level BPE tokenizer with ChatML special tokens and template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    core.train_from_iterator(CORPUS * 20, trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<|im_start|>", eos_token="<|im_end|>",
                                        pad_token="<|endoftext|>", unk_token="<|endoftext|>")
    tokenizer.chat_template = CHATML_TEMPLATE
    if folder is not None:
        tokenizer.save_pretrained(folder)
    return tokenizer


def build_model(folder: Path, tokenizer, vocab_size: int | None = None, seed: int = 0, **shape):
    """A random-weight Llama saved with ``tokenizer``; ``shape`` overrides the small defaults."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    dims = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
            "num_key_value_heads": 2, "max_position_embeddings": 2048, **shape}
    config = LlamaConfig(
        vocab_size=vocab_size or len(tokenizer), tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, **dims,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
    )
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return model


def build_tiny_model(folder: Path) -> Path:
    """The test suite's BASE_MODEL: two layers, hidden 64.

    Its (tied, frozen under LoRA) embeddings start wider than the usual 0.02: with hidden 64
    and normalised hidden states, 0.02 caps every logit near 1.3, and no adapter could make
    the model confident about anything.
    """
    build_model(folder, build_tokenizer(), initializer_range=0.2)
    return folder
