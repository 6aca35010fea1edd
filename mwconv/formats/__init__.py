"""What mwconv knows about each file format. ``names`` is light (no framework
imports) so the command line can list choices without loading anything."""
