#!/bin/sh
# callscreen-agi.sh -- run callscreen's classic AGI program with its settings.
#
# Asterisk starts an AGI program with Asterisk's own environment, which holds no
# CALLSCREEN_* settings. This wrapper reads them from a file of KEY=value lines (the
# .env format of `callscreen serve`), then runs the program with the arguments and
# the AGI conversation Asterisk gave it.
#
# Install (paths are examples; astagidir is /var/lib/asterisk/agi-bin by default):
#   install -m 755 asterisk/callscreen-agi.sh /var/lib/asterisk/agi-bin/callscreen-agi
#   install -d /etc/callscreen && cp .env /etc/callscreen/callscreen.env
# and set CALLSCREEN_AGI_PROGRAM below (or in the environment) to the program in
# callscreen's virtualenv.
set -eu
: "${CALLSCREEN_ENV_FILE:=/etc/callscreen/callscreen.env}"
: "${CALLSCREEN_AGI_PROGRAM:=/opt/callscreen/.venv/bin/callscreen-agi}"
if [ -r "$CALLSCREEN_ENV_FILE" ]; then
    set -a
    # shellcheck disable=SC1090
    . "$CALLSCREEN_ENV_FILE"
    set +a
else
    echo "callscreen-agi: $CALLSCREEN_ENV_FILE not readable: using the default settings" >&2
fi
exec "$CALLSCREEN_AGI_PROGRAM" "$@"
