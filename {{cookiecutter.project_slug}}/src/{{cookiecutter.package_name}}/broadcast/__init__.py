"""Channels over WebSockets: a hub of local clients fed by a pub/sub backend.

`backend.py` is the contract, `memory.py` the in-process backend, `hub.py`
the registry and fan-out, `client.py` one connection's outbound side and
`envelope.py` the frames clients receive.
"""
