"""The ``creditbank`` command line (Typer); ``main(argv) -> int`` is the entry point."""
