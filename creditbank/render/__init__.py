"""Documents for people: transcript and certificate view models, HTML, PDF/A-3b, PAdES, QR.

Imports the core (value types) and the rendering libraries; never storage.
"""
