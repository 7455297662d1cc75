"""Offline speech: text-to-speech prompts, recognition on live calls, intent from text."""
