"""The example protocols, installed as the package data of ``aeqlab.examples`` (see ``aeqlab.example``)."""
