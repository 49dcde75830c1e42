/*
 * sup_event — structured event records (see sup_event.h).
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "hamq/log.h"
#include "sup_event.h"

static const struct {
    const char *event;
    const char *id;
} message_ids[] = {
    {"peer-found", "0a9581faf08e48ca80fb0685d04c8ed0"},
    {"peer-lost", "ac1353072afb41f38182f1a6c7caecc7"},
    {"peer-refused", "39c745ec78774c51bfb989fef3520a5f"},
    {"handover-request", "660443c708c84fa6858a80052888be36"},
    {"handover-ack", "10bb8d10073b4c89adbc72fdeb173d85"},
    {"handover-timeout", "3adb74c5bfc5423c806f6edbb4efa282"},
    {"child-start", "4f53f763066342ea9dd6dd3280700023"},
    {"child-exit", "17033db4dfa04f27870d82409bbf96b4"},
    {"child-frozen-kill", "de90c74fdf1345f38b35d55b98710b88"},
    {"vip-add", "249d813c14de4bdaa45c6373846008ee"},
    {"vip-remove", "7b537d3cbaad44e3a62e7bab4776ec68"},
    {"link-up", "1099adc6f99e424087dc2a8bbec6783d"},
    {"link-down", "b6ed6e9ec74846418dfdb65ae4ad932b"},
    {"start", "a478df60a06f48f985fb795afb6f37fb"},
    {"backup-ready", "1d3d29808e03483991c0ef0aefd42a20"},
    {"promote", "c3fad7686cc74fa6a36b1523b4b9e49f"},
    {"demote", "497d6c62f841491888541a3edb0b739b"},
    {"failover", "286c5965e7b34ef9a26511b8e3c798a1"},
    {"failback", "662c56e65c0c455491e224d2a14700d9"},
    {"fenced", "d0b6f400c1794a8eaefb131671cbe679"},
    {"serving", "6b3d8fd39a0344848159390f6472c25a"},
    {"writer-busy", "aee2673a758345f7a22f9785ffe4dbdd"},
    {"core-frozen", "41e460e4063c466c9828ea50a0547c05"},
};

const char *sup_event_message_id(const char *event)
{
    for (size_t i = 0; i < sizeof message_ids / sizeof message_ids[0]; i++)
        if (strcmp(message_ids[i].event, event) == 0)
            return message_ids[i].id;
    return NULL;
}

void sup_event(int prio, const char *event, const char *peer, const char *fmt, ...)
{
    char ev[64], mid[64], pe[96];
    const char *fields[4] = {ev, NULL, NULL, NULL};
    int n = 1;
    snprintf(ev, sizeof ev, "HAMQ_EVENT=%s", event);
    const char *id = sup_event_message_id(event);
    if (id) {
        snprintf(mid, sizeof mid, "MESSAGE_ID=%s", id);
        fields[n++] = mid;
    }
    if (peer) {
        snprintf(pe, sizeof pe, "HAMQ_PEER=%s", peer);
        fields[n++] = pe;
    }
    va_list ap;
    va_start(ap, fmt);
    log_vfields(prio, fields, fmt, ap);
    va_end(ap);
}

void sup_event_ha(int prio, const char *event, const char *peer, const char *role, uint64_t epoch,
                  int64_t duration_ms, const char *fmt, ...)
{
    char ev[64], mid[64], pe[96], ro[48], ep[48], du[48];
    const char *fields[7] = {ev};
    int n = 1;
    snprintf(ev, sizeof ev, "HAMQ_EVENT=%s", event);
    const char *id = sup_event_message_id(event);
    if (id) {
        snprintf(mid, sizeof mid, "MESSAGE_ID=%s", id);
        fields[n++] = mid;
    }
    if (peer) {
        snprintf(pe, sizeof pe, "HAMQ_PEER=%s", peer);
        fields[n++] = pe;
    }
    if (role) {
        snprintf(ro, sizeof ro, "HAMQ_ROLE=%s", role);
        fields[n++] = ro;
    }
    snprintf(ep, sizeof ep, "HAMQ_EPOCH=%" PRIu64, epoch);
    fields[n++] = ep;
    if (duration_ms >= 0) {
        snprintf(du, sizeof du, "HAMQ_DURATION_MS=%" PRId64, duration_ms);
        fields[n++] = du;
    }
    va_list ap;
    va_start(ap, fmt);
    log_vfields(prio, fields, fmt, ap);
    va_end(ap);
}
