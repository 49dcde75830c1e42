/*
 * hamq_stat — `hamq queue stat`: one receiving link on the broker's
 * "$hamq.queue-stat" source (daemons/README.md), one message per queue with
 * the counters as application properties, the link detached after the last.
 * Printed as Artemis' single-line-header table (artemis-compat §1.4):
 * |NAME|ADDRESS|CONSUMER_COUNT|MESSAGE_COUNT|MESSAGES_ADDED|DELIVERING_COUNT|
 * MESSAGES_ACKED|SCHEDULED_COUNT|ROUTING_TYPE| (hamq has no scheduled
 * messages: that column is 0).
 */
#include "config.h"

#include <inttypes.h>
#include <proton/connection.h>
#include <proton/delivery.h>
#include <proton/event.h>
#include <proton/link.h>
#include <proton/session.h>
#include <proton/terminus.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hamq.h"

#define STAT_ROWS_MAX 100000

struct stat_row {
    char name[256], address[256], routing[16];
    int64_t consumers, messages, added, delivering, acked;
};

struct stat_cmd {
    struct hq_app app;
    struct hq_opts *o;
    pn_link_t *l;
    pn_message_t *msg;
    struct stat_row *rows;
    size_t n, cap;
    bool ended, failed;
    int64_t deadline;
};

static void setup(struct hq_app *app, pn_connection_t *conn)
{
    struct stat_cmd *s = (struct stat_cmd *)app;
    char src[600];
    pn_session_t *ss = pn_session(conn);

    pn_session_open(ss);
    snprintf(src, sizeof(src), "$hamq.queue-stat%s%s", s->o->queue_name ? "?queue=" : "",
             s->o->queue_name ? s->o->queue_name : "");
    s->l = pn_receiver(ss, "hamq-queue-stat");
    pn_terminus_set_address(pn_link_source(s->l), src);
    pn_link_set_snd_settle_mode(s->l, PN_SND_SETTLED);
    pn_link_open(s->l);
    pn_link_flow(s->l, 1000);
    s->n = 0;
}

static void get_field(pn_data_t *d, struct stat_row *r, pn_bytes_t k)
{
#define IS(lit) (k.size == sizeof(lit) - 1 && memcmp(k.start, lit, k.size) == 0)
    if (pn_data_type(d) == PN_STRING) {
        pn_bytes_t v = pn_data_get_string(d);
        char *dst = IS("name") ? r->name : IS("address") ? r->address
                                       : IS("routing") ? r->routing : NULL;
        size_t cap = IS("routing") ? sizeof(r->routing) : sizeof(r->name);
        if (dst)
            snprintf(dst, cap, "%.*s", (int)v.size, v.start);
    } else if (pn_data_type(d) == PN_LONG) {
        int64_t v = pn_data_get_long(d);
        if (IS("consumers"))
            r->consumers = v;
        else if (IS("messages"))
            r->messages = v;
        else if (IS("added"))
            r->added = v;
        else if (IS("delivering"))
            r->delivering = v;
        else if (IS("acked"))
            r->acked = v;
    }
#undef IS
}

static void on_row(struct stat_cmd *s)
{
    pn_data_t *d = pn_message_properties(s->msg);

    if (s->n == s->cap) {
        size_t nc = s->cap ? s->cap * 2 : 64;
        struct stat_row *nr = nc <= STAT_ROWS_MAX ? realloc(s->rows, nc * sizeof(*nr)) : NULL;
        if (!nr)
            return;
        s->rows = nr;
        s->cap = nc;
    }
    struct stat_row *r = &s->rows[s->n++];
    memset(r, 0, sizeof(*r));
    pn_data_rewind(d);
    if (!pn_data_next(d) || pn_data_type(d) != PN_MAP)
        return;
    pn_data_enter(d);
    while (pn_data_next(d)) {
        pn_bytes_t k = pn_data_type(d) == PN_STRING ? pn_data_get_string(d) : pn_bytes(0, "");
        if (!pn_data_next(d))
            break;
        get_field(d, r, k);
    }
}

static void on_event(struct hq_app *app, pn_event_t *e)
{
    struct stat_cmd *s = (struct stat_cmd *)app;

    switch (pn_event_type(e)) {
    case PN_DELIVERY: {
        pn_delivery_t *dl = pn_event_delivery(e);
        if (!pn_delivery_readable(dl))
            break;
        pn_message_clear(s->msg);
        bool ok = hq_read_message(dl, s->msg);
        if (pn_delivery_partial(dl))
            break;
        if (ok)
            on_row(s);
        pn_delivery_settle(dl);
        if (pn_link_credit(s->l) < 100)
            pn_link_flow(s->l, 1000);
        break;
    }
    case PN_LINK_REMOTE_CLOSE:
    case PN_LINK_REMOTE_DETACH: {
        pn_condition_t *c = pn_link_remote_condition(pn_event_link(e));
        if (pn_condition_is_set(c)) {
            fprintf(stderr, "queue stat refused by the broker: %s: %s\n",
                    pn_condition_get_name(c), pn_condition_get_description(c));
            s->failed = true;
        }
        s->ended = true;
        pn_link_close(pn_event_link(e));
        break;
    }
    default:
        break;
    }
}

static bool tick(struct hq_app *app, int64_t now)
{
    struct stat_cmd *s = (struct stat_cmd *)app;

    if (!s->ended && now > s->deadline) {
        fprintf(stderr, "queue stat: no complete answer from the broker within 10 s\n");
        s->failed = true;
        return true;
    }
    return s->ended;
}

static void cell(const char *v, int width, int max)
{
    int len = (int)strlen(v);

    if (max > 3 && len > max)
        printf("%.*s...%*s|", max - 3, v, width - max, "");
    else
        printf("%-*s|", width, v);
}

static void num(int64_t v, int width)
{
    printf("%-*" PRId64 "|", width, v);
}

static int cmp_rows(const void *a, const void *b)
{
    return strcmp(((const struct stat_row *)a)->name, ((const struct stat_row *)b)->name);
}

static void print_table(struct stat_cmd *s)
{
    int w = s->o->max_column_size > 0 ? s->o->max_column_size : 25;

    qsort(s->rows, s->n, sizeof(*s->rows), cmp_rows);
    printf("|");
    cell("NAME", w, -1);
    cell("ADDRESS", w, -1);
    printf("CONSUMER_COUNT|MESSAGE_COUNT|MESSAGES_ADDED|DELIVERING_COUNT|MESSAGES_ACKED|"
           "SCHEDULED_COUNT|ROUTING_TYPE|\n");
    for (size_t i = 0; i < s->n; i++) {
        const struct stat_row *r = &s->rows[i];
        printf("|");
        cell(r->name, w, s->o->max_column_size);
        cell(r->address, w, s->o->max_column_size);
        num(r->consumers, 14);
        num(r->messages, 13);
        num(r->added, 14);
        num(r->delivering, 16);
        num(r->acked, 14);
        num(0, 15);
        cell(r->routing, 12, -1);
        printf("\n");
    }
}

int hq_queue_stat(struct hq_opts *o)
{
    struct stat_cmd s = {.o = o};
    struct hq_conn c = {.o = o, .fd = -1};

    s.app = (struct hq_app){.setup = setup, .on_event = on_event, .tick = tick};
    s.msg = pn_message();
    s.deadline = hq_now_ms() + 10000;
    printf("Connection brokerURL = %s\n", o->url);
    int rc = hq_run(&c, &s.app);
    if (rc == 0 && !s.failed)
        print_table(&s);
    pn_message_free(s.msg);
    free(s.rows);
    return rc ? rc : s.failed ? HQ_EXIT_FAILED : HQ_EXIT_OK;
}
