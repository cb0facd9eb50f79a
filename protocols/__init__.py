"""The example protocols, installed as the package data of ``aeqlab.example_protocols`` (see ``aeqlab.example``)."""
