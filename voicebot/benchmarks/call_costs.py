"""Per-answer costs that size a GPU server (docs/capacity.md): what one answer asks of the LLM, what one second of
spoken answer costs the CPU in TTS.

``python -m voicebot.benchmarks.call_costs [--json]`` prints:

- **LLM prompt and output per answer**: for every question of the evaluation sets whose retrieval is confident
  enough for the model to be asked (``answer.llm_min_confidence``), the prompt :func:`knowledge.llm.build_messages`
  builds from the real retrieval on the configured knowledge base (passages, asked-type hint, date line), in
  characters and in tokens of the Gemma-3 tokenizer (the embedded GGUF, vocabulary only: the one instruction-model
  tokenizer available offline). The output is estimated by what a verified LLM answer says: the extractive answer
  of the same question (at most ``answer.max_sentences`` sentences) with one ``[page-id]`` citation per sentence.
- **TTS**: CPU seconds (all threads) per second of speech for each installed voice, on those answer texts.

No model server is contacted: the LLM engine is built with an address it never calls.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from knowledge.types import AnswerRequest
from voicebot.settings import Settings, get_settings

EVAL_DIR = Path(__file__).resolve().parents[2] / "knowledge" / "eval"
EVAL_SETS = ("questions.yaml", "heldout.yaml", "heldout2.yaml", "facts.yaml", "facts-heldout.yaml")
NEVER_CALLED = "http://127.0.0.1:9/v1"  # the discard port: build_messages needs no server
TTS_TEXTS = 12


def _questions() -> list[str]:
    questions: list[str] = []
    for name in EVAL_SETS:
        path = EVAL_DIR / name
        if path.is_file():
            items = yaml.safe_load(path.read_text(encoding="utf-8")) or []
            questions += [item["question"] for item in items if item.get("language", "de") == "de"]
    return list(dict.fromkeys(questions))


def _summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    if not ordered:
        return {"n": 0}
    return {
        "n": len(ordered),
        "mean": round(statistics.fmean(ordered), 1),
        "p50": round(ordered[len(ordered) // 2], 1),
        "p95": round(ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))], 1),
        "max": round(ordered[-1], 1),
    }


def _tokenizer(settings: Settings) -> Any:
    from llama_cpp import Llama

    from voicebot.models import require_model

    model = require_model(settings, "gemma-3-270m")
    return Llama(model_path=str(model), vocab_only=True, verbose=False)


def llm_sizes(settings: Settings) -> tuple[dict[str, Any], list[str]]:
    """Prompt and output sizes over the evaluation questions; also the answer texts (for the TTS measurement)."""
    from knowledge.engine import build_answer_engine
    from knowledge.index import load_retriever
    from knowledge.llm import LlmAnswerEngine, build_messages, passages_for
    from knowledge.sentences import SentenceSplitter

    base = settings.knowledge()
    config = replace(base, llm=base.llm.model_copy(update={"base_url": NEVER_CALLED}))
    engine = build_answer_engine(config, load_retriever(config), mode="llm")
    assert isinstance(engine, LlmAnswerEngine)
    extractive = engine._extractive
    vocabulary = _tokenizer(settings)

    def tokens(text: str) -> int:
        return len(vocabulary.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    prompt_tokens: list[float] = []
    prompt_chars: list[float] = []
    output_tokens: list[float] = []
    answers: list[str] = []
    asked = skipped = 0
    for question in _questions():
        request = AnswerRequest(question)
        retrieval = asyncio.run(extractive.retrieve(request))
        if retrieval.top is None or retrieval.confidence < config.answer.llm_min_confidence:
            skipped += 1
            continue
        asked += 1
        passages = passages_for(retrieval, config.retrieval.top_k, extractive.today())
        messages = build_messages(config, request, passages, engine._asked_types(request), extractive.today())
        text = "\n".join(str(message["content"]) for message in messages)
        prompt_tokens.append(tokens(text))
        prompt_chars.append(len(text))
        answer = asyncio.run(extractive.answer(request))
        splitter = SentenceSplitter()
        sentences = [*splitter.feed(answer.text), *splitter.flush()][: config.answer.max_sentences]
        page = (answer.sources or ["seite"])[0]
        cited = " ".join(f"{sentence.rstrip('.?!')} [{page}]." for sentence in sentences)
        output_tokens.append(tokens(cited))
        answers.append(" ".join(sentences))
    sizes = {
        "questions": asked + skipped,
        "llm_asked": asked,
        "prompt_tokens_gemma3": _summary(prompt_tokens),
        "prompt_chars": _summary(prompt_chars),
        "output_tokens_gemma3": _summary(output_tokens),
    }
    return sizes, answers


def tts_costs(settings: Settings, texts: list[str]) -> dict[str, Any]:
    """CPU seconds per second of speech, per installed voice (German espeak-ng, and Piper where installed)."""
    from voicebot.pipeline.tts import VoiceCatalog

    catalog = VoiceCatalog(settings.tts, Path(settings.paths.models_dir))
    results: dict[str, Any] = {}
    sample = texts[:TTS_TEXTS]
    for language in ("de", "en"):
        voice = catalog.voice_for(language)
        if voice.name in results:
            continue
        b"".join(voice.blocks(sample[0]))  # warm-up: the first synthesis loads the voice's runtime
        cpu_started, wall_started = time.process_time(), time.perf_counter()
        pcm_bytes = sum(len(b"".join(voice.blocks(text))) for text in sample)
        cpu, wall = time.process_time() - cpu_started, time.perf_counter() - wall_started
        speech_s = pcm_bytes / 2 / voice.sample_rate
        results[voice.name] = {
            "texts": len(sample),
            "speech_s": round(speech_s, 1),
            "cpu_s_per_speech_s": round(cpu / speech_s, 4),
            "wall_s_per_speech_s": round(wall / speech_s, 4),
        }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="Machine-readable output.")
    args = parser.parse_args()
    settings = get_settings()
    sizes, answers = llm_sizes(settings)
    result = {"llm": sizes, "tts": tts_costs(settings, answers)}
    if args.json:
        print(json.dumps(result, ensure_ascii=False, indent=1))
        return
    print(f"{sizes['llm_asked']} of {sizes['questions']} evaluation questions would ask the LLM")
    for key in ("prompt_tokens_gemma3", "prompt_chars", "output_tokens_gemma3"):
        print(f"  {key:<22} {sizes[key]}")
    for name, figures in result["tts"].items():
        print(f"TTS {name}: {figures}")


if __name__ == "__main__":
    main()
