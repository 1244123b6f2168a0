"""The WebSocket protocol: frames (`protocol`), one connection (`session`), its limits."""
