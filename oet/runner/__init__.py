"""The runner: one process that loads and executes ONE procedure.

It reads commands (start, stop) from a channel and reports states and script
events back over it. The embedded backend speaks to it over pipes
(``channels.stdio``); a Kubernetes channel will drive the same code.
"""
