"""The catalogers' tests use the session image fixtures of tests/conftest.py."""
