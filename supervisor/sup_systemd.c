/*
 * sup_systemd — StartUnit/StopUnit over sd-bus, job results from JobRemoved.
 * See sup_systemd.h.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <systemd/sd-bus.h>

#include "hamq/log.h"
#include "sup_systemd.h"

#define SD_DEST "org.freedesktop.systemd1"
#define SD_PATH "/org/freedesktop/systemd1"
#define SD_MGR "org.freedesktop.systemd1.Manager"

struct sup_systemd {
    sd_bus *bus;
    sd_bus_slot *match;
    char unit[256];
    char job[512]; /* the job we wait for, "" if none */
    bool job_is_start;
    sup_systemd_done_fn done;
    void *ctx;
};

static int on_job_removed(sd_bus_message *m, void *ctx, sd_bus_error *ret)
{
    struct sup_systemd *s = ctx;
    uint32_t id;
    const char *path, *unit, *result;
    (void)ret;
    if (sd_bus_message_read(m, "uoss", &id, &path, &unit, &result) < 0)
        return 0;
    if (!s->job[0] || strcmp(path, s->job) != 0)
        return 0;
    s->job[0] = 0;
    log_info("systemd: %s of %s finished: %s", s->job_is_start ? "start" : "stop", unit, result);
    if (s->done)
        s->done(s->ctx, s->job_is_start, strcmp(result, "done") == 0, result);
    return 0;
}

int sup_systemd_new(const char *unit, sup_systemd_done_fn done, void *ctx,
                    struct sup_systemd **out, char *err, size_t errlen)
{
    struct sup_systemd *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    snprintf(s->unit, sizeof s->unit, "%s", unit);
    s->done = done;
    s->ctx = ctx;
    int r = sd_bus_open_system(&s->bus);
    if (r < 0) {
        const char *addr = getenv("DBUS_SYSTEM_BUS_ADDRESS");
        snprintf(err, errlen,
                 "activation = systemd: cannot connect to the system bus (%s): %s "
                 "(it needs a host running systemd; use activation = exec in containers "
                 "and tests)",
                 addr ? addr : "unix:path=/run/dbus/system_bus_socket", strerror(-r));
        sup_systemd_free(s);
        return r;
    }
    r = sd_bus_match_signal(s->bus, &s->match, SD_DEST, SD_PATH, SD_MGR, "JobRemoved",
                            on_job_removed, s);
    if (r >= 0) {
        /* without Subscribe, systemd sends job signals only to clients that asked */
        sd_bus_error e = SD_BUS_ERROR_NULL;
        r = sd_bus_call_method(s->bus, SD_DEST, SD_PATH, SD_MGR, "Subscribe", &e, NULL, "");
        if (r < 0)
            snprintf(err, errlen, "systemd: Subscribe: %s", e.message ? e.message : strerror(-r));
        sd_bus_error_free(&e);
    } else {
        snprintf(err, errlen, "systemd: cannot watch JobRemoved: %s", strerror(-r));
    }
    if (r < 0) {
        sup_systemd_free(s);
        return r;
    }
    *out = s;
    return 0;
}

void sup_systemd_free(struct sup_systemd *s)
{
    if (!s)
        return;
    sd_bus_slot_unref(s->match);
    sd_bus_flush_close_unref(s->bus);
    free(s);
}

int sup_systemd_fd(const struct sup_systemd *s) { return sd_bus_get_fd(s->bus); }

int sup_systemd_on_readable(struct sup_systemd *s)
{
    for (int i = 0; i < 1000; i++) {
        int r = sd_bus_process(s->bus, NULL);
        if (r <= 0)
            return r;
    }
    return 0;
}

static int job(struct sup_systemd *s, const char *method, bool start, char *err, size_t errlen)
{
    sd_bus_error e = SD_BUS_ERROR_NULL;
    sd_bus_message *reply = NULL;
    const char *path = NULL;
    int r = sd_bus_call_method(s->bus, SD_DEST, SD_PATH, SD_MGR, method, &e, &reply, "ss",
                               s->unit, "replace");
    if (r >= 0)
        r = sd_bus_message_read(reply, "o", &path);
    if (r < 0)
        snprintf(err, errlen, "systemd: %s %s: %s", method, s->unit,
                 e.message ? e.message : strerror(-r));
    else {
        snprintf(s->job, sizeof s->job, "%s", path);
        s->job_is_start = start;
        log_info("systemd: %s %s queued as %s", method, s->unit, path);
    }
    sd_bus_message_unref(reply);
    sd_bus_error_free(&e);
    return r < 0 ? r : 0;
}

int sup_systemd_start(struct sup_systemd *s, char *err, size_t errlen)
{
    return job(s, "StartUnit", true, err, errlen);
}

int sup_systemd_stop(struct sup_systemd *s, char *err, size_t errlen)
{
    return job(s, "StopUnit", false, err, errlen);
}

int sup_systemd_main_pid(struct sup_systemd *s, const char *service, int *pid)
{
    sd_bus_error e = SD_BUS_ERROR_NULL;
    sd_bus_message *reply = NULL;
    const char *path;
    uint32_t v = 0;
    *pid = 0;
    int r = sd_bus_call_method(s->bus, SD_DEST, SD_PATH, SD_MGR, "GetUnit", &e, &reply, "s",
                               service);
    if (r >= 0 && (r = sd_bus_message_read(reply, "o", &path)) >= 0)
        r = sd_bus_get_property_trivial(s->bus, SD_DEST, path,
                                        "org.freedesktop.systemd1.Service", "MainPID", &e, 'u',
                                        &v);
    sd_bus_message_unref(reply);
    sd_bus_error_free(&e);
    if (r >= 0)
        *pid = (int)v;
    return r < 0 ? r : 0;
}
