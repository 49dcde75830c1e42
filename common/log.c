/*
 * log — see include/hamq/log.h. Called from every process; never allocates
 * on the heap (records are formatted into stack buffers, long messages are
 * cut with a marker) so it is safe on error paths where memory is short.
 */
#include "hamq/log.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-journal.h>

#define LOG_MAX_FIELDS 16
#define LOG_MSG_MAX 2048

static const char *log_ident = "hamq";
static enum log_target log_target_now = LOG_TARGET_STDERR;
static int log_max = LOG_INFO;

static const char *const prio_names[] = {"emerg", "alert", "crit", "err",
                                         "warning", "notice", "info", "debug"};

/* journald's documented JOURNAL_STREAM check: "dev:ino" of our stderr. */
static bool stderr_is_journal(void)
{
    const char *e = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    struct stat st;

    if (!e || sscanf(e, "%llu:%llu", &dev, &ino) != 2)
        return false;
    if (fstat(STDERR_FILENO, &st) < 0)
        return false;
    return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void log_init(const char *ident, enum log_target target)
{
    if (ident && *ident)
        log_ident = ident;
    if (target == LOG_TARGET_AUTO)
        target = stderr_is_journal() ? LOG_TARGET_JOURNAL : LOG_TARGET_STDERR;
    log_target_now = target;
}

void log_set_max_priority(int max)
{
    if (max >= LOG_EMERG && max <= LOG_DEBUG)
        log_max = max;
}

int log_get_max_priority(void)
{
    return log_max;
}

enum log_target log_current_target(void)
{
    return log_target_now;
}

int log_priority_from_name(const char *name)
{
    for (int i = 0; i < (int)(sizeof(prio_names) / sizeof(prio_names[0])); i++)
        if (strcmp(name, prio_names[i]) == 0)
            return i;
    if (strcmp(name, "error") == 0)
        return LOG_ERR;
    if (strcmp(name, "warn") == 0)
        return LOG_WARNING;
    return -EINVAL;
}

static bool field_key_ok(const char *f)
{
    const char *eq = strchr(f, '=');

    if (!eq || eq == f || f[0] == '_')
        return false;
    for (const char *p = f; p < eq; p++)
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_'))
            return false;
    return true;
}

static int send_journal(int prio, const char *const *fields, const char *msg)
{
    struct iovec iov[LOG_MAX_FIELDS + 3];
    char prio_field[16], ident_field[128], msg_field[LOG_MSG_MAX + 8];
    int n = 0;

    snprintf(prio_field, sizeof(prio_field), "PRIORITY=%d", prio);
    snprintf(ident_field, sizeof(ident_field), "SYSLOG_IDENTIFIER=%s", log_ident);
    snprintf(msg_field, sizeof(msg_field), "MESSAGE=%s", msg);
    iov[n++] = (struct iovec){msg_field, strlen(msg_field)};
    iov[n++] = (struct iovec){prio_field, strlen(prio_field)};
    iov[n++] = (struct iovec){ident_field, strlen(ident_field)};
    for (int i = 0; fields && fields[i] && i < LOG_MAX_FIELDS; i++)
        if (field_key_ok(fields[i]))
            iov[n++] = (struct iovec){(void *)fields[i], strlen(fields[i])};
    return sd_journal_sendv(iov, n);
}

static void send_stderr(int prio, const char *const *fields, const char *msg)
{
    char line[LOG_MSG_MAX + 512], stamp[40];
    struct timespec ts;
    struct tm tm;
    size_t off;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
    off = (size_t)snprintf(line, sizeof(line), "%s.%03ldZ %s[%d] %s: %s", stamp,
                           ts.tv_nsec / 1000000, log_ident, (int)getpid(), prio_names[prio], msg);
    for (int i = 0; fields && fields[i] && i < LOG_MAX_FIELDS && off < sizeof(line); i++)
        off += (size_t)snprintf(line + off, sizeof(line) - off, "%s%s", i ? " " : "  {",
                                fields[i]);
    if (fields && fields[0] && off < sizeof(line))
        off += (size_t)snprintf(line + off, sizeof(line) - off, "}");
    if (off >= sizeof(line) - 1)
        off = sizeof(line) - 2;
    line[off++] = '\n';
    /* One write() per record: lines of concurrent processes do not interleave. */
    ssize_t w = write(STDERR_FILENO, line, off);
    (void)w;
}

void log_vfields(int prio, const char *const *fields, const char *fmt, va_list ap)
{
    char msg[LOG_MSG_MAX];
    int saved = errno;
    int n;

    if (prio < LOG_EMERG || prio > LOG_DEBUG)
        prio = LOG_ERR;
    if (prio > log_max)
        return;
    n = vsnprintf(msg, sizeof(msg), fmt, ap);
    if (n >= (int)sizeof(msg))
        memcpy(msg + sizeof(msg) - 5, "...", 4);
    if (log_target_now != LOG_TARGET_JOURNAL || send_journal(prio, fields, msg) < 0)
        send_stderr(prio, fields, msg);
    errno = saved;
}

void log_fields(int prio, const char *const *fields, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    log_vfields(prio, fields, fmt, ap);
    va_end(ap);
}
