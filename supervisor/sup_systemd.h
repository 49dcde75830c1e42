/*
 * sup_systemd — systemd activation mode: StartUnit/StopUnit of a unit
 * (hamq.target) on the system bus with sd-bus, and the job's result.
 *
 * The StartUnit/StopUnit call itself is synchronous (systemd answers as soon
 * as the job is queued); the job's end arrives later as a JobRemoved signal,
 * read from sup_systemd_fd() in the supervisor's loop, and reported once
 * through the done callback with the job's result ("done", "failed",
 * "canceled", "timeout", "dependency", "skipped").
 *
 * Errors are -errno with err naming the bus and the unit, e.g. when there is
 * no system bus ("cannot connect to the system bus: No such file or directory
 * (activation = systemd needs a host running systemd; use activation = exec
 * in containers)").
 */
#ifndef HAMQ_SUP_SYSTEMD_H
#define HAMQ_SUP_SYSTEMD_H

#include <stdbool.h>
#include <stddef.h>

struct sup_systemd;
/* start: the job was a start (else a stop); ok: its result was "done". */
typedef void (*sup_systemd_done_fn)(void *ctx, bool start, bool ok, const char *result);

int sup_systemd_new(const char *unit, sup_systemd_done_fn done, void *ctx,
                    struct sup_systemd **out, char *err, size_t errlen);
void sup_systemd_free(struct sup_systemd *s);
int sup_systemd_fd(const struct sup_systemd *s);
/* Processes what the bus has for us (JobRemoved). 0 or -errno. */
int sup_systemd_on_readable(struct sup_systemd *s);
int sup_systemd_start(struct sup_systemd *s, char *err, size_t errlen);
int sup_systemd_stop(struct sup_systemd *s, char *err, size_t errlen);
/* MainPID of a service unit (0 if not running), for core health. */
int sup_systemd_main_pid(struct sup_systemd *s, const char *service, int *pid);

#endif
