"""The CLI's exit codes: the one table from the error tree
(:mod:`callscreen.core.errors`) to what a script sees. A test fails if an error class
is missing here; README.md ("Exit codes") lists the same table.

=====  ==================================================================
code   meaning
=====  ==================================================================
0      done
1      failed: a command's own refusal (bad rows in an import, a question
       answered no), or an internal error
2      usage: an unknown option or a bad argument (before anything ran)
3      invalid input: a number, name, date, file or setting that cannot
       be used; fix it and run again
4      not found: no such list, entry or campaign
5      refused: a rule forbids the change (permanent entries), or it needs
       a confirmation that was not given
6      conflict: a name already taken, or a change that clashed with
       another one made at the same time; look, then try again
7      Redis answered with an error (or bytes that are not RESP), or refused
       the password
8      Asterisk's manager interface (AMI) could not be used
9      the stored data is older than this release: run ``callscreen migrate``
75     Redis unavailable: could not be reached or did not answer in time;
       retry later (``EX_TEMPFAIL`` of sysexits.h)
=====  ==================================================================
"""

from __future__ import annotations

from callscreen.core import errors

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INVALID = 3
EXIT_NOT_FOUND = 4
EXIT_REFUSED = 5
EXIT_CONFLICT = 6
EXIT_STORE = 7
EXIT_AMI = 8
EXIT_SCHEMA = 9
EXIT_UNAVAILABLE = 75

EXIT_CODES: dict[type[errors.CallscreenError], int] = {
    errors.CallscreenError: EXIT_FAILED,
    errors.InvalidInput: EXIT_INVALID,
    errors.InvalidNumber: EXIT_INVALID,
    errors.InvalidName: EXIT_INVALID,
    errors.NotFound: EXIT_NOT_FOUND,
    errors.Conflict: EXIT_CONFLICT,
    errors.Refused: EXIT_REFUSED,
    errors.NeedsConfirmation: EXIT_REFUSED,
    errors.SchemaTooOld: EXIT_SCHEMA,
    errors.StoreError: EXIT_STORE,
    errors.StoreUnavailable: EXIT_UNAVAILABLE,
    errors.StoreProtocolError: EXIT_STORE,
    errors.StoreAuthError: EXIT_STORE,
    # the HTTP API's own refusals: a command never raises them, each still has its code
    errors.Unauthenticated: EXIT_REFUSED,
    errors.Forbidden: EXIT_REFUSED,
    errors.RateLimited: EXIT_UNAVAILABLE,
    errors.TooLarge: EXIT_INVALID,
    errors.AmiUnavailable: EXIT_AMI,
    errors.ProtocolError: EXIT_FAILED,
    errors.PeerHangup: EXIT_FAILED,
}


def exit_code(exc: errors.CallscreenError) -> int:
    """The exit code for ``exc``: its class's, or its nearest listed ancestor's."""
    for cls in type(exc).__mro__:
        code = EXIT_CODES.get(cls)
        if code is not None:
            return code
    return EXIT_FAILED
