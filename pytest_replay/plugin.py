"""pytest plugin (placeholder until the collector lands)."""
