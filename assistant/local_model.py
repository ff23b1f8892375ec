"""A saved model version in memory: its prompt, prefill, batched step and token choice, which
assistant.local_batch runs for every reply under way.

Imports torch: only the local provider's torch thread imports this module, so the
chat service runs without the training packages while USE_LOCAL_AI is off.

Why not ``model.generate``: on a CPU each decoded step costs a pass over every weight,
so decoding is memory-bound. Int8 weights (dynamic quantisation of the linear layers)
read a quarter of the bytes; a bare loop over the KV cache skips generate's per-step
bookkeeping (1.67x generate's tokens/s, docs/BENCHMARKS.md); one step for all the
replies under way shares the pass between them (bench/local_generate.py).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Callable, Iterator

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, DynamicCache, LogitsProcessorList
from transformers.generation.logits_process import (
    RepetitionPenaltyLogitsProcessor, TemperatureLogitsWarper, TopPLogitsWarper,
)
from transformers.utils import logging as hf_logging

from assistant.completion import without_nul
from assistant.local_batch import Batch
from assistant.local_decoder import Row
from config import LocalSettings

# The likeliest tokens searched first for the nucleus (top-p). Sorting all 49,152 scores of SmolLM2's vocabulary
# cost 4 ms per reply per step, and drawing from them 1 ms, against 39 ms for one batched forward of 8 replies
# (one torch thread): sampling 8 rows took longer than the step itself. Among the candidates, a pick whose nucleus
# holds 14 tokens took 0.36 ms against 5.7 ms through the warper (repetition penalty and temperature included).
NUCLEUS_CANDIDATES = 256
ADAPTER_CONFIG = "adapter_config.json"  # peft's: a version that holds a LoRA adapter, not full weights


class PromptTooLong(ValueError):
    """The conversation does not fit the model's context with room for a reply."""


class LoadedModel:
    """One version's tokenizer and weights, ready to answer; safe to share between threads."""

    def __init__(self, version: str, model, tokenizer, settings: LocalSettings):
        self.version = version
        self.settings = settings
        self.tokenizer = tokenizer
        model.eval()
        self.model = quantized(model) if settings.quantize else model
        self.context = getattr(model.config, "max_position_embeddings", 2048)
        eos = model.generation_config.eos_token_id
        self.eos = set(eos if isinstance(eos, list) else [eos if eos is not None else self.tokenizer.eos_token_id])
        self.sampling = LogitsProcessorList()
        if settings.repetition_penalty != 1.0:
            self.sampling.append(RepetitionPenaltyLogitsProcessor(settings.repetition_penalty))
        if settings.temperature > 0:
            self.sampling.append(TemperatureLogitsWarper(settings.temperature))
        self.top_p = TopPLogitsWarper(settings.top_p)

    @classmethod
    def load(cls, version: str, path: Path, settings: LocalSettings) -> "LoadedModel":
        """A saved version's tokenizer and weights (an adapter merged into its base)."""
        tokenizer, model = load_version(path)
        return cls(version, model, tokenizer, settings)

    def prompt(self, messages: list[dict]) -> torch.Tensor:
        """The conversation as input ids, through the version's chat template."""
        ids = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                                 return_dict=True)["input_ids"]
        if ids.shape[1] + self.settings.max_new_tokens > self.context:
            raise PromptTooLong(f"{ids.shape[1]} prompt tokens leave no room for a reply")
        return ids

    def prefill(self, ids: torch.Tensor):
        """The prompt through the model alone: its KV cache, and the logits of the reply's first token."""
        cache = DynamicCache(config=self.model.config)
        with torch.inference_mode():
            logits = self.model(input_ids=ids, past_key_values=cache, use_cache=True, logits_to_keep=1).logits
        return cache, logits[:, -1].float()

    def step(self, tokens: torch.Tensor, cache, mask: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """Each row's next logits, from its last token (``tokens`` [rows, 1]) over a left-padded batched cache."""
        with torch.inference_mode():
            return self.model(input_ids=tokens, attention_mask=mask, position_ids=positions, past_key_values=cache,
                              use_cache=True, logits_to_keep=1).logits[:, -1].float()

    def batch(self) -> Batch:
        """An empty batch of replies decoding on this version."""
        return Batch(self)

    def reply(self, messages: list[dict], deadline: float) -> tuple[str, bool]:
        """The whole reply, and whether the model ended it (rather than LOCAL_MAX_NEW_TOKENS), on this thread."""
        row, batch, ids = Row(self, messages, deadline), self.batch(), []
        batch.join(row)
        while True:
            while not row.items.empty():
                kind, value = row.items.get()
                if kind == "error":
                    raise value
                if kind == "end":
                    return self.text(ids), len(ids) < self.settings.max_new_tokens
                if kind == "token":
                    ids.append(value)
            batch.step()

    def text(self, token_ids: list[int]) -> str:
        """The reply so far as text."""
        return without_nul(self.tokenizer.decode(token_ids, skip_special_tokens=True))

    def pick(self, seen: torch.Tensor, logits: torch.Tensor) -> int:
        """The next token of one reply (``seen``: its ids so far): the likeliest at temperature 0, else sampled
        from the shaped distribution."""
        with torch.inference_mode():
            scores = self.sampling(seen, logits)
            if self.settings.temperature == 0:
                return int(scores.argmax(dim=-1))
            ids, weights = self.nucleus(scores)
            return int(ids[torch.multinomial(weights, num_samples=1)])

    def nucleus(self, scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The tokens top-p sampling draws from, and their weights: the smallest set of likeliest tokens that
        holds LOCAL_TOP_P of the probability, as transformers' TopPLogitsWarper keeps. Looked for among the
        NUCLEUS_CANDIDATES likeliest first; a flatter distribution than that goes through the warper whole."""
        probs = torch.softmax(scores[0], dim=-1)
        top, ids = probs.topk(min(NUCLEUS_CANDIDATES, probs.numel()))
        if top.sum() >= self.settings.top_p:  # every token past the candidates has at least top_p above it
            keep = top.cumsum(0) - top < self.settings.top_p  # the probability of the likelier tokens
            return ids[keep], top[keep]
        shaped = torch.softmax(self.top_p(None, scores), dim=-1)[0]
        ids = shaped.nonzero()[:, 0]
        return ids, shaped[ids]


def load_version(path: Path, base: Callable[[str], torch.nn.Module] | None = None):
    """A saved version's tokenizer and float32 causal LM.

    An adapter version's LoRA weights are merged into its base model, which ``base(name)`` gives
    (by default read from the folder or the Hugging Face cache each time: a process keeps no float32
    base beside the model it serves, 540 MB for SmolLM2-135M, for a read that happens only when the
    active version changes); a version with full weights (TRAIN_FULL, or saved before versions held
    adapters) loads as it is.
    """
    hf_logging.disable_progress_bar()
    tokenizer = AutoTokenizer.from_pretrained(path)
    if not (Path(path) / ADAPTER_CONFIG).is_file():
        return tokenizer, AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    from peft import PeftConfig, PeftModel

    name = PeftConfig.from_pretrained(path).base_model_name_or_path
    model = PeftModel.from_pretrained((base or _read_base)(name), path)
    return tokenizer, model.merge_and_unload()


def _read_base(name: str) -> torch.nn.Module:
    return AutoModelForCausalLM.from_pretrained(name, dtype=torch.float32)


def quantized(model):
    """The model with int8 weights in its linear layers, activations quantised on the fly."""
    with warnings.catch_warnings():  # torch points eager-mode quantisation users to torchao
        warnings.simplefilter("ignore")
        return torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)

