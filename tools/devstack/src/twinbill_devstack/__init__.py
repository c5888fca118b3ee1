"""Local stack for development, the demo and the test suite."""
