/*
 * hamq_stat — `hamq queue stat`: one receiving link on the broker's
 * "$hamq.queue-stat" source (daemons/README.md), one message per queue with
 * the counters as application properties, the link detached after the last.
 * Printed as Artemis' single-line-header table (artemis-compat §1.4):
 * |NAME|ADDRESS|CONSUMER_COUNT|MESSAGE_COUNT|MESSAGES_ADDED|DELIVERING_COUNT|
 * MESSAGES_ACKED|SCHEDULED_COUNT|ROUTING_TYPE| (hamq has no scheduled
 * messages: that column is 0), or with --json as one JSON document per
 * iteration, {"data":[...],"count":N}, with Artemis' listQueues field names.
 *
 * Filters: --queueName TEXT goes to the broker ("?queue=TEXT"); Artemis'
 * --field/--operation/--value is applied here, on the rows received.
 * --loop repeats on the same connection every --interval ms (a new stat
 * link each time), --count N iterations at most; a lost connection is
 * reconnected (the iteration in progress starts again).
 */
#include "config.h"

#include <errno.h>
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
#include <strings.h>

#include "hamq.h"

#define STAT_ROWS_MAX  100000
#define STAT_ANSWER_MS 10000

/*
 * One queue as the broker reported it. Counters the broker did not send
 * keep their "unknown" marker (durable -1, killed/expired -1): --json prints
 * them as null, never as an invented 0.
 */
struct stat_row {
    char name[256], address[256], routing[16];
    int64_t consumers, messages, added, delivering, acked;
    int durable;             /* -1 unknown, 0, 1 */
    int64_t killed, expired; /* -1 unknown */
};

/* The columns --field can name: the table title and the JSON name. */
enum stat_col {
    COL_NAME,
    COL_ADDRESS,
    COL_CONSUMERS,
    COL_MESSAGES,
    COL_ADDED,
    COL_DELIVERING,
    COL_ACKED,
    COL_SCHEDULED,
    COL_ROUTING,
    COL_N
};

static const struct {
    const char *title, *json;
    bool numeric;
} cols[COL_N] = {
    [COL_NAME] = {"NAME", "name", false},
    [COL_ADDRESS] = {"ADDRESS", "address", false},
    [COL_CONSUMERS] = {"CONSUMER_COUNT", "consumerCount", true},
    [COL_MESSAGES] = {"MESSAGE_COUNT", "messageCount", true},
    [COL_ADDED] = {"MESSAGES_ADDED", "messagesAdded", true},
    [COL_DELIVERING] = {"DELIVERING_COUNT", "deliveringCount", true},
    [COL_ACKED] = {"MESSAGES_ACKED", "messagesAcked", true},
    [COL_SCHEDULED] = {"SCHEDULED_COUNT", "scheduledCount", true},
    [COL_ROUTING] = {"ROUTING_TYPE", "routingType", false},
};

enum stat_op { OP_CONTAINS, OP_NOT_CONTAINS, OP_EQUALS, OP_GREATER, OP_LESS, OP_N };

static const char *const op_names[OP_N] = {
    [OP_CONTAINS] = "CONTAINS", [OP_NOT_CONTAINS] = "NOT_CONTAINS",
    [OP_EQUALS] = "EQUALS",     [OP_GREATER] = "GREATER_THAN",
    [OP_LESS] = "LESS_THAN",
};

struct stat_filter {
    bool on;
    enum stat_col col;
    enum stat_op op;
    const char *value;
    long long num; /* the value, for GREATER_THAN / LESS_THAN */
};

enum stat_phase { PH_QUERY, PH_WAIT };

struct stat_cmd {
    struct hq_app app;
    struct hq_opts *o;
    struct stat_filter filter;
    pn_connection_t *conn;
    pn_link_t *l;
    pn_message_t *msg;
    struct stat_row *rows;
    size_t n, cap;
    enum stat_phase phase;
    long iterations;
    bool failed;
    int64_t deadline, next_at;
};

static int find_col(const char *f)
{
    for (int i = 0; i < COL_N; i++)
        if (strcasecmp(f, cols[i].title) == 0 || strcmp(f, cols[i].json) == 0)
            return i;
    return -1;
}

static int find_op(const char *op)
{
    for (int i = 0; i < OP_N; i++)
        if (strcasecmp(op, op_names[i]) == 0)
            return i;
    return -1;
}

/* Parses --field/--operation/--value into f; err says what is wrong. */
static int parse_filter(const struct hq_opts *o, struct stat_filter *f, char *err, size_t errlen)
{
    memset(f, 0, sizeof(*f));
    if (!o->field && !o->operation && !o->value)
        return 0;
    if (!o->field || !o->operation || !o->value) {
        snprintf(err, errlen, "--field, --operation and --value go together (all three)");
        return -EINVAL;
    }
    if (o->queue_name) {
        snprintf(err, errlen, "--queueName cannot be combined with --field/--operation/--value");
        return -EINVAL;
    }
    int c = find_col(o->field), op = find_op(o->operation);
    if (c < 0) {
        snprintf(err, errlen,
                 "--field '%s': not one of NAME ADDRESS CONSUMER_COUNT "
                 "MESSAGE_COUNT MESSAGES_ADDED DELIVERING_COUNT MESSAGES_ACKED SCHEDULED_COUNT "
                 "ROUTING_TYPE",
                 o->field);
        return -EINVAL;
    }
    if (op < 0) {
        snprintf(err, errlen,
                 "--operation '%s': not one of CONTAINS NOT_CONTAINS EQUALS "
                 "GREATER_THAN LESS_THAN",
                 o->operation);
        return -EINVAL;
    }
    f->on = true;
    f->col = (enum stat_col)c;
    f->op = (enum stat_op)op;
    f->value = o->value;
    if (op == OP_GREATER || op == OP_LESS) {
        char *end;
        errno = 0;
        f->num = strtoll(o->value, &end, 10);
        if (!cols[c].numeric || errno || *end || end == o->value) {
            snprintf(err, errlen,
                     "--operation %s needs a numeric --field and a number as "
                     "--value (got %s '%s')",
                     op_names[op], cols[c].title, o->value);
            return -EINVAL;
        }
    }
    return 0;
}

int hq_stat_check(const struct hq_opts *o, char *err, size_t errlen)
{
    struct stat_filter f;

    if (o->max_column_size >= 0 && o->max_column_size < 4) {
        snprintf(err, errlen, "--maxColumnSize must be -1 (no limit) or at least 4");
        return -EINVAL;
    }
    if (o->loop_count && !o->loop) {
        snprintf(err, errlen, "--count needs --loop (or --interval)");
        return -EINVAL;
    }
    return parse_filter(o, &f, err, errlen);
}

static void open_stat_link(struct stat_cmd *s, int64_t now)
{
    char src[600];
    pn_session_t *ss = pn_session(s->conn);

    pn_session_open(ss);
    snprintf(src, sizeof(src), "$hamq.queue-stat%s%s", s->o->queue_name ? "?queue=" : "",
             s->o->queue_name ? s->o->queue_name : "");
    s->l = pn_receiver(ss, "hamq-queue-stat");
    pn_terminus_set_address(pn_link_source(s->l), src);
    pn_link_set_snd_settle_mode(s->l, PN_SND_SETTLED);
    pn_link_open(s->l);
    pn_link_flow(s->l, 1000);
    s->n = 0;
    s->phase = PH_QUERY;
    s->deadline = now + STAT_ANSWER_MS;
}

static void setup(struct hq_app *app, pn_connection_t *conn)
{
    struct stat_cmd *s = (struct stat_cmd *)app;

    s->conn = conn;
    s->l = NULL;
    if (s->phase == PH_QUERY) /* first connect, or the connection broke mid-answer */
        open_stat_link(s, hq_now_ms());
}

static void get_field(pn_data_t *d, struct stat_row *r, pn_bytes_t k)
{
#define IS(lit) (k.size == sizeof(lit) - 1 && memcmp(k.start, lit, k.size) == 0)
    if (pn_data_type(d) == PN_STRING) {
        pn_bytes_t v = pn_data_get_string(d);
        char *dst = IS("name")      ? r->name
                    : IS("address") ? r->address
                    : IS("routing") ? r->routing
                                    : NULL;
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
        else if (IS("dead_lettered"))
            r->killed = v;
        else if (IS("expired"))
            r->expired = v;
    } else if (pn_data_type(d) == PN_BOOL && IS("durable")) {
        r->durable = pn_data_get_bool(d) ? 1 : 0;
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
    r->durable = -1;
    r->killed = r->expired = -1;
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

static void end_answer(struct stat_cmd *s);

static void on_event(struct hq_app *app, pn_event_t *e)
{
    struct stat_cmd *s = (struct stat_cmd *)app;

    switch (pn_event_type(e)) {
    case PN_DELIVERY: {
        pn_delivery_t *dl = pn_event_delivery(e);
        if (pn_delivery_link(dl) != s->l || !pn_delivery_readable(dl))
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
        pn_link_t *l = pn_event_link(e);
        pn_condition_t *c = pn_link_remote_condition(l);
        if (l != s->l)
            break;
        if (pn_condition_is_set(c)) {
            fprintf(stderr, "Failed to get Stats for Queues. Reason: %s: %s\n",
                    pn_condition_get_name(c), pn_condition_get_description(c));
            s->failed = true;
        }
        pn_link_close(l);
        pn_session_close(pn_link_session(l));
        s->l = NULL;
        end_answer(s);
        break;
    }
    default:
        break;
    }
}

/* ---- filtering and printing ---- */

static int64_t col_num(const struct stat_row *r, enum stat_col c)
{
    switch (c) {
    case COL_CONSUMERS:
        return r->consumers;
    case COL_MESSAGES:
        return r->messages;
    case COL_ADDED:
        return r->added;
    case COL_DELIVERING:
        return r->delivering;
    case COL_ACKED:
        return r->acked;
    default:
        return 0;
    }
}

static const char *col_text(const struct stat_row *r, enum stat_col c, char *buf, size_t cap)
{
    switch (c) {
    case COL_NAME:
        return r->name;
    case COL_ADDRESS:
        return r->address;
    case COL_ROUTING:
        return r->routing;
    default:
        snprintf(buf, cap, "%" PRId64, col_num(r, c));
        return buf;
    }
}

static int cmp_rows(const void *a, const void *b)
{
    return strcmp(((const struct stat_row *)a)->name, ((const struct stat_row *)b)->name);
}

static bool row_matches(const struct stat_filter *f, const struct stat_row *r)
{
    char buf[32];

    if (!f->on)
        return true;
    const char *t = col_text(r, f->col, buf, sizeof(buf));
    switch (f->op) {
    case OP_CONTAINS:
        return strstr(t, f->value) != NULL;
    case OP_NOT_CONTAINS:
        return strstr(t, f->value) == NULL;
    case OP_EQUALS:
        return f->col == COL_ROUTING ? strcasecmp(t, f->value) == 0 : strcmp(t, f->value) == 0;
    case OP_GREATER:
        return col_num(r, f->col) > f->num;
    case OP_LESS:
        return col_num(r, f->col) < f->num;
    default:
        return false;
    }
}

/* Keeps the rows the filter passes, sorted by name; returns how many. */
static size_t select_rows(struct stat_cmd *s)
{
    size_t k = 0;

    for (size_t i = 0; i < s->n; i++)
        if (row_matches(&s->filter, &s->rows[i]))
            s->rows[k++] = s->rows[i];
    s->n = k;
    if (k > 1)
        qsort(s->rows, s->n, sizeof(*s->rows), cmp_rows);
    return k;
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

/* Width of the NAME and ADDRESS columns: --maxColumnSize, or the longest value with -1. */
static int text_width(const struct stat_cmd *s, size_t shown)
{
    int w = (int)strlen("ADDRESS");

    if (s->o->max_column_size > 0)
        return s->o->max_column_size;
    for (size_t i = 0; i < shown; i++) {
        int a = (int)strlen(s->rows[i].name), b = (int)strlen(s->rows[i].address);
        w = a > w ? a : w;
        w = b > w ? b : w;
    }
    return w;
}

static void print_table(struct stat_cmd *s, size_t shown)
{
    int w = text_width(s, shown);

    printf("|");
    cell("NAME", w, -1);
    cell("ADDRESS", w, -1);
    printf("CONSUMER_COUNT|MESSAGE_COUNT|MESSAGES_ADDED|DELIVERING_COUNT|MESSAGES_ACKED|"
           "SCHEDULED_COUNT|ROUTING_TYPE|\n");
    for (size_t i = 0; i < shown; i++) {
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

static void json_str(const char *key, const char *v)
{
    printf("\"%s\":\"", key);
    for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
        if (*p == '"' || *p == '\\')
            printf("\\%c", *p);
        else if (*p < 0x20)
            printf("\\u%04x", *p);
        else
            putchar(*p);
    }
    printf("\",");
}

static void json_num(const char *key, int64_t v, bool known, const char *sep)
{
    if (known)
        printf("\"%s\":%" PRId64 "%s", key, v, sep);
    else
        printf("\"%s\":null%s", key, sep);
}

static void print_json(struct stat_cmd *s, size_t shown)
{
    printf("{\"data\":[");
    for (size_t i = 0; i < shown; i++) {
        const struct stat_row *r = &s->rows[i];
        printf("%s{", i ? "," : "");
        json_str("name", r->name);
        json_str("address", r->address);
        json_str("routingType", r->routing);
        printf("\"durable\":%s,", r->durable < 0 ? "null" : r->durable ? "true" : "false");
        json_num("consumerCount", r->consumers, true, ",");
        json_num("messageCount", r->messages, true, ",");
        json_num("messagesAdded", r->added, true, ",");
        json_num("deliveringCount", r->delivering, true, ",");
        json_num("messagesAcked", r->acked, true, ",");
        json_num("scheduledCount", 0, true, ",");
        json_num("messagesKilled", r->killed, r->killed >= 0, ",");
        json_num("messagesExpired", r->expired, r->expired >= 0, "");
        printf("}");
    }
    printf("],\"count\":%zu}\n", s->n);
}

/* The broker ended the stat link: print this iteration, then wait or finish. */
static void end_answer(struct stat_cmd *s)
{
    int64_t now = hq_now_ms();

    if (s->phase != PH_QUERY)
        return;
    s->phase = PH_WAIT;
    s->next_at = now + s->o->interval_ms;
    s->iterations++;
    if (s->failed)
        return;
    size_t total = select_rows(s);
    size_t shown = total > (size_t)s->o->max_rows ? (size_t)s->o->max_rows : total;
    if (s->o->json) {
        print_json(s, shown);
    } else {
        print_table(s, shown);
        if (shown < total)
            printf("WARNING: the displayed queues are %zu/%zu, set maxRows to display more "
                   "queues.\n",
                   shown, total);
        if (s->o->loop && (!s->o->loop_count || s->iterations < s->o->loop_count))
            printf("Waiting %ld before another queue stat iteration\n", s->o->interval_ms);
    }
    fflush(stdout);
}

static bool tick(struct hq_app *app, int64_t now)
{
    struct stat_cmd *s = (struct stat_cmd *)app;

    if (s->phase == PH_QUERY && now > s->deadline) {
        fprintf(stderr, "queue stat: no complete answer from the broker within %d s\n",
                STAT_ANSWER_MS / 1000);
        s->failed = true;
        return true;
    }
    if (s->phase == PH_QUERY)
        return false;
    if (s->failed || !s->o->loop || (s->o->loop_count && s->iterations >= s->o->loop_count))
        return true;
    if (now >= s->next_at)
        open_stat_link(s, now);
    return false;
}

int hq_queue_stat(struct hq_opts *o)
{
    struct stat_cmd s = {.o = o};
    struct hq_conn c = {.o = o, .fd = -1};
    char err[256];

    if (parse_filter(o, &s.filter, err, sizeof(err)) < 0) { /* checked in main already */
        fprintf(stderr, "hamq queue stat: %s\n", err);
        return HQ_EXIT_USAGE;
    }
    s.app = (struct hq_app){
        .setup = setup, .on_event = on_event, .tick = tick, .failover = o->loop || o->nurls > 1};
    s.msg = pn_message();
    if (!s.msg) {
        fprintf(stderr, "out of memory\n");
        return HQ_EXIT_FAILED;
    }
    if (!o->json) /* Artemis: --json prints nothing but the JSON */
        printf("Connection brokerURL = %s\n", o->url);
    int rc = hq_run(&c, &s.app);
    pn_message_free(s.msg);
    free(s.rows);
    hq_conn_thread_done();
    return rc ? rc : s.failed ? HQ_EXIT_FAILED : HQ_EXIT_OK;
}
