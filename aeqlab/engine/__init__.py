"""The per-sample engine: plans of instrument messages, the bench they run on, the methods, the trainer.

The engine knows only the bench and, through it, the drivers' capability Protocols.
"""
