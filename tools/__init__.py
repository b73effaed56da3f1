"""Developer tools: the recording relay and the golden-recording script."""
