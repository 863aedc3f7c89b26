"""The kubeforge language: grammar, parser, AST, diagnostics and formatter."""
