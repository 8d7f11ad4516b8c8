"""Benchmark commands' code: voice-to-voice latency and ASR word error rate (numbers, never test assertions)."""
