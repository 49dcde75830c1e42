/*
 * core-filter — recursive-descent parser of the selector subset into a small
 * tree, and its three-valued evaluator (see core-filter.h for the grammar).
 *   expr := and { OR and } ; and := not { AND not } ; not := NOT not | cmp
 *   cmp  := primary [ op primary | IS [NOT] NULL ] ; primary := ( expr ) | ident | literal
 * Depth is bounded (MAX_DEPTH) so a hostile selector cannot exhaust the stack.
 */
#include "core-filter.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_DEPTH 64
#define MAX_NODES 1024

enum node_kind { N_OR, N_AND, N_NOT, N_CMP, N_ISNULL, N_IDENT, N_STR, N_INT, N_DBL, N_BOOL };
enum cmp_op { OP_EQ, OP_NE, OP_LT, OP_GT, OP_LE, OP_GE };

struct node {
    enum node_kind kind;
    int op;         /* N_CMP: enum cmp_op; N_ISNULL: 1 = IS NOT NULL */
    int a, b;       /* children (indexes) */
    char *s;        /* N_IDENT, N_STR */
    int64_t i;
    double d;
};

struct core_filter {
    struct node *n;
    int count, root;
};

struct parser {
    const char *src;
    size_t pos;
    struct core_filter *f;
    char *err;
    size_t errlen;
    bool failed;
    int depth;
};

static int fail(struct parser *p, const char *what)
{
    if (!p->failed)
        snprintf(p->err, p->errlen, "selector: %s at position %zu", what, p->pos + 1);
    p->failed = true;
    return -1;
}

static int add_node(struct parser *p, struct node nd)
{
    if (p->f->count >= MAX_NODES)
        return fail(p, "selector too long");
    p->f->n[p->f->count] = nd;
    return p->f->count++;
}

static void skip_ws(struct parser *p)
{
    while (isspace((unsigned char)p->src[p->pos]))
        p->pos++;
}

/* Case-insensitive keyword followed by a non-identifier character. */
static bool keyword(struct parser *p, const char *kw)
{
    skip_ws(p);
    size_t n = strlen(kw);
    const char *s = p->src + p->pos;
    if (strncasecmp(s, kw, n) != 0 || isalnum((unsigned char)s[n]) || s[n] == '_' || s[n] == '$')
        return false;
    p->pos += n;
    return true;
}

static int parse_or(struct parser *p);

static int parse_string(struct parser *p)
{
    size_t cap = strlen(p->src + p->pos) + 1, len = 0;
    char *s = malloc(cap);
    if (!s)
        return fail(p, "out of memory");
    p->pos++; /* opening quote */
    for (;;) {
        char c = p->src[p->pos];
        if (c == 0) {
            free(s);
            return fail(p, "unterminated string");
        }
        p->pos++;
        if (c == '\'') {
            if (p->src[p->pos] != '\'')
                break;
            p->pos++;
        }
        s[len++] = c;
    }
    s[len] = 0;
    int r = add_node(p, (struct node){.kind = N_STR, .s = s});
    if (r < 0)
        free(s);
    return r;
}

static int parse_number(struct parser *p)
{
    const char *start = p->src + p->pos;
    char *end;
    errno = 0;
    long long v = strtoll(start, &end, 10);
    if (*end == '.' || *end == 'e' || *end == 'E' || errno == ERANGE) {
        errno = 0;
        double d = strtod(start, &end);
        if (errno == ERANGE || end == start)
            return fail(p, "bad number");
        p->pos += (size_t)(end - start);
        return add_node(p, (struct node){.kind = N_DBL, .d = d});
    }
    p->pos += (size_t)(end - start);
    return add_node(p, (struct node){.kind = N_INT, .i = v});
}

static int parse_ident(struct parser *p)
{
    size_t start = p->pos;
    while (isalnum((unsigned char)p->src[p->pos]) || p->src[p->pos] == '_' ||
           p->src[p->pos] == '$' || p->src[p->pos] == '.')
        p->pos++;
    char *s = strndup(p->src + start, p->pos - start);
    if (!s)
        return fail(p, "out of memory");
    int r = add_node(p, (struct node){.kind = N_IDENT, .s = s});
    if (r < 0)
        free(s);
    return r;
}

static int parse_primary(struct parser *p)
{
    skip_ws(p);
    char c = p->src[p->pos];
    if (c == '(') {
        p->pos++;
        int r = parse_or(p);
        skip_ws(p);
        if (r < 0 || p->src[p->pos] != ')')
            return fail(p, "expected ')'");
        p->pos++;
        return r;
    }
    if (c == '\'')
        return parse_string(p);
    if (isdigit((unsigned char)c) || ((c == '-' || c == '+' || c == '.') &&
                                      isdigit((unsigned char)p->src[p->pos + 1])))
        return parse_number(p);
    if (keyword(p, "TRUE"))
        return add_node(p, (struct node){.kind = N_BOOL, .i = 1});
    if (keyword(p, "FALSE"))
        return add_node(p, (struct node){.kind = N_BOOL, .i = 0});
    static const char *const reserved[] = {"AND", "OR", "NOT", "IS", "NULL", "LIKE", "IN",
                                           "BETWEEN", "ESCAPE"};
    for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++) {
        size_t save = p->pos;
        if (keyword(p, reserved[i])) {
            p->pos = save;
            return fail(p, "expected a property, a literal or '('");
        }
    }
    if (isalpha((unsigned char)c) || c == '_' || c == '$')
        return parse_ident(p);
    return fail(p, c ? "expected a property, a literal or '('" : "unexpected end");
}

static int parse_op(struct parser *p)
{
    static const struct { const char *s; int op; } ops[] = {
        {"<>", OP_NE}, {"<=", OP_LE}, {">=", OP_GE}, {"=", OP_EQ}, {"<", OP_LT}, {">", OP_GT}};
    skip_ws(p);
    for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
        if (strncmp(p->src + p->pos, ops[i].s, strlen(ops[i].s)) == 0) {
            p->pos += strlen(ops[i].s);
            return ops[i].op;
        }
    return -1;
}

static int parse_cmp(struct parser *p)
{
    int a = parse_primary(p);
    if (a < 0)
        return -1;
    if (keyword(p, "IS")) {
        int neg = keyword(p, "NOT") ? 1 : 0;
        if (!keyword(p, "NULL"))
            return fail(p, "expected NULL after IS");
        return add_node(p, (struct node){.kind = N_ISNULL, .op = neg, .a = a});
    }
    size_t save = p->pos;
    int op = parse_op(p);
    if (op < 0) {
        p->pos = save;
        skip_ws(p);
        char c = p->src[p->pos];
        if (c && c != ')' && !keyword(p, "AND") && !keyword(p, "OR"))
            return fail(p, "unsupported syntax (supported: = <> < > <= >= IS [NOT] NULL AND OR NOT)");
        p->pos = save;
        return a;
    }
    int b = parse_primary(p);
    if (b < 0)
        return -1;
    return add_node(p, (struct node){.kind = N_CMP, .op = op, .a = a, .b = b});
}

static int parse_not(struct parser *p)
{
    if (++p->depth > MAX_DEPTH)
        return fail(p, "selector nested too deeply");
    int r;
    if (keyword(p, "NOT")) {
        int a = parse_not(p);
        r = a < 0 ? -1 : add_node(p, (struct node){.kind = N_NOT, .a = a});
    } else {
        r = parse_cmp(p);
    }
    p->depth--;
    return r;
}

static int parse_and(struct parser *p)
{
    int a = parse_not(p);
    while (a >= 0 && keyword(p, "AND")) {
        int b = parse_not(p);
        a = b < 0 ? -1 : add_node(p, (struct node){.kind = N_AND, .a = a, .b = b});
    }
    return a;
}

static int parse_or(struct parser *p)
{
    if (++p->depth > MAX_DEPTH)
        return fail(p, "selector nested too deeply");
    int a = parse_and(p);
    while (a >= 0 && keyword(p, "OR")) {
        int b = parse_and(p);
        a = b < 0 ? -1 : add_node(p, (struct node){.kind = N_OR, .a = a, .b = b});
    }
    p->depth--;
    return a;
}

void core_filter_free(struct core_filter *f)
{
    if (!f)
        return;
    for (int i = 0; i < f->count; i++)
        free(f->n[i].s);
    free(f->n);
    free(f);
}

struct core_filter *core_filter_compile(const char *text, char *err, size_t errlen)
{
    struct core_filter *f = calloc(1, sizeof(*f));
    struct parser p = {.src = text, .f = f, .err = err, .errlen = errlen};
    if (!f || !(f->n = calloc(MAX_NODES, sizeof(*f->n)))) {
        free(f);
        snprintf(err, errlen, "selector: out of memory");
        return NULL;
    }
    f->root = parse_or(&p);
    skip_ws(&p);
    if (f->root >= 0 && text[p.pos] != 0)
        fail(&p, "unexpected text");
    if (p.failed || f->root < 0) {
        if (!p.failed)
            fail(&p, "empty selector");
        core_filter_free(f);
        return NULL;
    }
    return f;
}

/* ---- evaluation ---- */

enum tv { T_FALSE = 0, T_TRUE = 1, T_UNKNOWN = 2 };
enum vkind { V_NULL, V_STR, V_INT, V_DBL, V_BOOL };

struct value {
    enum vkind k;
    const uint8_t *s;
    size_t len;
    int64_t i;
    double d;
};

static struct value str_value(struct msgproto_bytes b)
{
    return (struct value){.k = V_STR, .s = b.p, .len = b.len};
}

static bool header_value(const char *name, const struct hmsg *m, struct value *v)
{
    if (strcmp(name, "JMSPriority") == 0)
        *v = (struct value){.k = V_INT, .i = m->priority};
    else if (strcmp(name, "JMSMessageID") == 0)
        *v = m->message_id.len ? str_value(m->message_id) : (struct value){.k = V_NULL};
    else if (strcmp(name, "JMSCorrelationID") == 0)
        *v = m->correlation_id.len ? str_value(m->correlation_id) : (struct value){.k = V_NULL};
    else if (strcmp(name, "JMSType") == 0)
        *v = m->subject.len ? str_value(m->subject) : (struct value){.k = V_NULL};
    else if (strcmp(name, "JMSTimestamp") == 0)
        *v = (struct value){.k = V_INT, .i = m->timestamp};
    else if (strcmp(name, "JMSExpiration") == 0)
        *v = (struct value){.k = V_INT, .i = m->expiration};
    else if (strcmp(name, "JMSDeliveryMode") == 0)
        *v = str_value(msgproto_str(m->durable ? "PERSISTENT" : "NON_PERSISTENT"));
    else
        return false;
    return true;
}

static struct value ident_value(const char *name, const struct hmsg *m)
{
    struct value v = {.k = V_NULL};
    struct hmsg_prop pr;
    if (header_value(name, m, &v) || !hmsg_prop_find(m, name, &pr))
        return v;
    switch (pr.type) {
    case HMSG_PROP_STRING:
        return str_value(pr.v.bytes);
    case HMSG_PROP_INT64:
        return (struct value){.k = V_INT, .i = pr.v.i};
    case HMSG_PROP_DOUBLE:
        return (struct value){.k = V_DBL, .d = pr.v.d};
    case HMSG_PROP_BOOL:
        return (struct value){.k = V_BOOL, .i = pr.v.b};
    default:
        return v; /* NULL and binary compare as missing */
    }
}

static struct value node_value(const struct core_filter *f, int i, const struct hmsg *m)
{
    const struct node *n = &f->n[i];
    switch (n->kind) {
    case N_IDENT:
        return ident_value(n->s, m);
    case N_STR:
        return (struct value){.k = V_STR, .s = (const uint8_t *)n->s, .len = strlen(n->s)};
    case N_INT:
        return (struct value){.k = V_INT, .i = n->i};
    case N_DBL:
        return (struct value){.k = V_DBL, .d = n->d};
    case N_BOOL:
        return (struct value){.k = V_BOOL, .i = n->i};
    default:
        return (struct value){.k = V_NULL}; /* a boolean expression used as a value */
    }
}

static enum tv cmp_result(int c, int op)
{
    switch (op) {
    case OP_EQ: return c == 0 ? T_TRUE : T_FALSE;
    case OP_NE: return c != 0 ? T_TRUE : T_FALSE;
    case OP_LT: return c < 0 ? T_TRUE : T_FALSE;
    case OP_GT: return c > 0 ? T_TRUE : T_FALSE;
    case OP_LE: return c <= 0 ? T_TRUE : T_FALSE;
    default: return c >= 0 ? T_TRUE : T_FALSE;
    }
}

static enum tv compare(struct value a, struct value b, int op)
{
    bool an = a.k == V_INT || a.k == V_DBL, bn = b.k == V_INT || b.k == V_DBL;
    if (an && bn) {
        if (a.k == V_INT && b.k == V_INT)
            return cmp_result((a.i > b.i) - (a.i < b.i), op);
        double x = a.k == V_INT ? (double)a.i : a.d, y = b.k == V_INT ? (double)b.i : b.d;
        if (isnan(x) || isnan(y))
            return T_UNKNOWN;
        return cmp_result((x > y) - (x < y), op);
    }
    if (a.k != b.k || a.k == V_NULL || (op != OP_EQ && op != OP_NE))
        return T_UNKNOWN;
    if (a.k == V_BOOL)
        return cmp_result(a.i != b.i, op);
    int c = a.len == b.len ? memcmp(a.s, b.s, a.len) : 1;
    return cmp_result(c, op);
}

static enum tv eval(const struct core_filter *f, int i, const struct hmsg *m)
{
    const struct node *n = &f->n[i];
    switch (n->kind) {
    case N_OR: {
        enum tv a = eval(f, n->a, m), b = eval(f, n->b, m);
        return a == T_TRUE || b == T_TRUE ? T_TRUE : (a == T_FALSE && b == T_FALSE ? T_FALSE : T_UNKNOWN);
    }
    case N_AND: {
        enum tv a = eval(f, n->a, m), b = eval(f, n->b, m);
        return a == T_FALSE || b == T_FALSE ? T_FALSE : (a == T_TRUE && b == T_TRUE ? T_TRUE : T_UNKNOWN);
    }
    case N_NOT: {
        enum tv a = eval(f, n->a, m);
        return a == T_UNKNOWN ? T_UNKNOWN : (a == T_TRUE ? T_FALSE : T_TRUE);
    }
    case N_CMP:
        return compare(node_value(f, n->a, m), node_value(f, n->b, m), n->op);
    case N_ISNULL: {
        bool isnull = node_value(f, n->a, m).k == V_NULL;
        return (isnull != (n->op == 1)) ? T_TRUE : T_FALSE;
    }
    default: {
        struct value v = node_value(f, i, m); /* a bare boolean property or literal */
        return v.k == V_BOOL ? (v.i ? T_TRUE : T_FALSE) : T_UNKNOWN;
    }
    }
}

bool core_filter_match(const struct core_filter *f, const struct hmsg *m)
{
    return eval(f, f->root, m) == T_TRUE;
}
