"""Trace format v1: value encoding, the event vocabulary, the streaming reader and writer."""
