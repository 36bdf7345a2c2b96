class StartupError(Exception):
    """A problem that stops the kernel from starting.

    Its message is one line that says what is wrong and what to fix; the
    command line prints it (no traceback) and exits non-zero.
    """
