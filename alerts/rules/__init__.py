"""The rule language: syntax tree, parser, validation and compilation to core programs."""
