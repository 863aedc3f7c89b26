"""One emitter per artifact kind."""
