"""The production side: instrumentation that writes replayable traces."""
