"""Listening for events: the `EventListener` and the `Consumer` seam."""
