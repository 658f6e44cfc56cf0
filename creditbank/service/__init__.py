"""Use cases: the imperative shell around the pure core."""
