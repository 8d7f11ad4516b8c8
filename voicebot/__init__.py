"""Telephone voicebot for citizen hotlines of German municipalities."""

__version__ = "0.1.0"
