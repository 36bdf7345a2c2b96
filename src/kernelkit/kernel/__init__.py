"""Dispatch, status, stdin, control and the base class kernel authors subclass."""
