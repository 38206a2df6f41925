"""A/B comparison of trace sets, recorded or replayed (``compare-replays``)."""
