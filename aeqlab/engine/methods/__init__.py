"""Training methods, written as plans over the bench's roles (see :mod:`aeqlab.engine.plan`)."""
