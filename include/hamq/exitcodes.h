/*
 * exitcodes — the exit status of every hamq daemon, as ONE enum.
 *
 * The exit status is an interface between a daemon and whoever restarts it:
 * hamq-supervisor in exec mode (supervisor/sup_child.c decides "restart with
 * backoff" or "stop" from it and logs why) and systemd in systemd mode (the
 * units list the "do not restart" codes in RestartPreventExitStatus=).
 *
 * Compatibility: the numbers are part of the unit files and of operators'
 * scripts. Never renumber; add new codes at the end (below 64, so they do not
 * collide with the sysexits.h range or with 128+signal from the shell).
 */
#ifndef HAMQ_EXITCODES_H
#define HAMQ_EXITCODES_H

enum hamq_exit {
    HAMQ_EXIT_OK = 0,            /* clean stop on request: do not restart */
    HAMQ_EXIT_INTERNAL = 1,      /* unexpected failure (bug, OOM...): restart with backoff */
    HAMQ_EXIT_CONFIG = 2,        /* bad configuration or arguments: do not restart */
    HAMQ_EXIT_FENCED = 3,        /* a newer epoch fenced us off the store: do not restart */
    HAMQ_EXIT_STORE_CORRUPT = 4, /* the store failed verification: do not restart */
    HAMQ_EXIT_LOCK_LOST = 5,     /* lost or never got writer.lock: restart with backoff */
    HAMQ_EXIT_IO = 6,            /* I/O error on the store (EIO, ENOSPC): restart with backoff */
    HAMQ_EXIT_PEER_GONE = 7,     /* a worker lost its core (or the reverse): restart */
    HAMQ_EXIT_NO_STORE = 8,      /* store path missing or unusable (no locks): do not restart */
};

/* Codes after which no supervisor may restart the process. Keep in sync with units/. */
#define HAMQ_EXIT_NO_RESTART_LIST "2 3 4 8"

#endif
