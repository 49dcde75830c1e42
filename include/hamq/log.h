/*
 * log — the one logging module of every hamq process.
 *
 * Under journald (the JOURNAL_STREAM variable names our stderr, or the caller
 * forces it) each record goes to the journal with sd_journal_sendv: MESSAGE,
 * PRIORITY, SYSLOG_IDENTIFIER and the caller's own fields (HAMQ_EVENT=...,
 * HAMQ_EPOCH=...), so `journalctl HAMQ_EVENT=promote` filters them.
 * Otherwise it writes one readable line per record to stderr:
 *
 *   2026-11-27T13:40:00.123Z hamq-journal[4242] warning: message  {HAMQ_EVENT=x}
 *
 * State: one process-wide identity and target, set once by log_init() from
 * main() before any thread starts; everything else is stateless.
 */
#ifndef HAMQ_LOG_H
#define HAMQ_LOG_H

#include <stdarg.h>
#include <syslog.h>

enum log_target {
    LOG_TARGET_AUTO = 0, /* journal if JOURNAL_STREAM matches stderr, else stderr */
    LOG_TARGET_STDERR,
    LOG_TARGET_JOURNAL,
};

/* ident: the SYSLOG_IDENTIFIER (e.g. "hamq-journal"); kept by pointer. */
void log_init(const char *ident, enum log_target target);
/* Records with a priority numerically above max (e.g. LOG_DEBUG) are dropped. */
void log_set_max_priority(int max);
int log_get_max_priority(void);
/* Parses "debug", "info", "notice", "warning", "err"...; returns -EINVAL if unknown. */
int log_priority_from_name(const char *name);
enum log_target log_current_target(void);

/*
 * fields: NULL or a NULL-terminated array of "KEY=value" strings. KEY must be
 * upper case letters, digits and '_' (journald's rule); a bad key is logged
 * as part of the message instead of being dropped.
 */
void log_fields(int prio, const char *const *fields, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void log_vfields(int prio, const char *const *fields, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

#define log_err(...)    log_fields(LOG_ERR, NULL, __VA_ARGS__)
#define log_warn(...)   log_fields(LOG_WARNING, NULL, __VA_ARGS__)
#define log_notice(...) log_fields(LOG_NOTICE, NULL, __VA_ARGS__)
#define log_info(...)   log_fields(LOG_INFO, NULL, __VA_ARGS__)
#define log_debug(...)  log_fields(LOG_DEBUG, NULL, __VA_ARGS__)

/* A state change: adds HAMQ_EVENT=<event> to the caller's fields. */
#define log_event(prio, event, ...)                                                    \
    log_fields((prio), (const char *const[]){"HAMQ_EVENT=" event, NULL}, __VA_ARGS__)

#endif
