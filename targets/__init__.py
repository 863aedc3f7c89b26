"""Targets: how a compiled plan reaches hosts."""
