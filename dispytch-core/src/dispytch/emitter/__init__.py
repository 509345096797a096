"""Emitting events: the `EventEmitter` and the `Producer` seam."""
