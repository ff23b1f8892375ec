"""bench/local_generate.py's CTranslate2 side, run by the Python of .cache/ctranslate2-venv (CTranslate2 from PyPI,
bench/requirements-ctranslate2.txt): convert a saved model to int8, or time greedy replies from it.

Converting needs torch and transformers, which that venv does not hold: ``--convert`` reads them from the
project's .venv (given as ``--project-site``), after the venv's own packages.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time


def convert(model: str, out: str, project_site: str) -> None:
    """The saved Hugging Face model as a CTranslate2 model with int8 weights."""
    sys.path.append(project_site)
    from ctranslate2.converters import TransformersConverter

    TransformersConverter(model).convert(out, quantization="int8", force=True)


def replies(model: str, prompt: list[str], batch: int, new_tokens: int, repeats: int, threads: int) -> dict:
    """Greedy replies of exactly ``new_tokens`` to ``batch`` copies of the prompt in one call, ``repeats`` times after
    a warm-up: the median of the aggregate tokens/s (prefill included)."""
    import ctranslate2

    generator = ctranslate2.Generator(model, device="cpu", compute_type="int8", intra_threads=threads)

    def run() -> float:
        started = time.perf_counter()
        generator.generate_batch([prompt] * batch, max_length=new_tokens, min_length=new_tokens, sampling_topk=1,
                                 include_prompt_in_result=False)
        return batch * new_tokens / (time.perf_counter() - started)

    run()
    return {"tokens_per_s": statistics.median(run() for _ in range(repeats))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--convert", help="write the int8 model to this folder and exit")
    parser.add_argument("--project-site", help="the project's site-packages, for the converter's torch")
    parser.add_argument("--prompt", help="a JSON list of the prompt's tokens")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    if args.convert:
        convert(args.model, args.convert, args.project_site)
        return
    print(json.dumps(replies(args.model, json.loads(args.prompt), args.batch, args.new_tokens, args.repeats,
                             args.threads)))


if __name__ == "__main__":
    main()
