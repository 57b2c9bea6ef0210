"""One module per ``snl-video`` verb; each exposes ``register(subparsers)``."""
