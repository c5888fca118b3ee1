"""Pure EnOS protocol rules: topics, payload parsing, thing-model validation, signing. No I/O."""
