"""Errors the user can fix, told apart from bugs.

A :class:`UserError` is a bad argument value, a missing folder, a bad level entry:
the command line prints it as one line and exits 2. Any other exception is a bug
and keeps its traceback.
"""

from contextlib import contextmanager


class UserError(Exception):
    """Something the user asked for that cannot be done, and what to do about it.

    ``what`` says what is wrong; ``hint`` what to do (the command line adds a
    pointer to the command's ``--help`` when there is none).
    """

    def __init__(self, what: str, hint: str | None = None):
        super().__init__(what)
        self.what = what
        self.hint = hint

    def __str__(self) -> str:
        return self.what if not self.hint else f'{self.what}; {self.hint}'


@contextmanager
def user_errors(*kinds: type[BaseException], hint: str | None = None, prefix: str = ''):
    """Turn the domain code's errors of ``kinds`` (default ValueError) into a UserError.

    The domain functions raise ValueError (OSError for files) with a message that
    names the bad input; only the command line knows that the input came from the user.
    """
    caught = tuple(kinds) or (ValueError,)
    try:
        yield
    except caught as error:
        raise UserError(f'{prefix}{error}', hint) from error
