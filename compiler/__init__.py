"""The compiler: typed IR, semantic checks and emitters."""
