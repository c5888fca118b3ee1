"""Pure rules of the gateway: credentials, tokens, routes. No I/O, no clock."""
