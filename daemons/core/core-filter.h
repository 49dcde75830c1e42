/*
 * core-filter — the message selector subset consumers may give (JMS/Artemis
 * syntax). Supported, and nothing else (anything else is a parse error that
 * names the position and what was expected):
 *   - identifiers: application properties by name, and the headers
 *     JMSPriority, JMSMessageID, JMSCorrelationID, JMSType (= subject),
 *     JMSTimestamp, JMSExpiration, JMSDeliveryMode ('PERSISTENT' /
 *     'NON_PERSISTENT');
 *   - literals: 'string' ('' inside for a quote), integers, decimals
 *     (with optional exponent), TRUE, FALSE;
 *   - comparisons = <> < > <= >= (strings and booleans: = and <> only;
 *     integers and decimals compare numerically), IS NULL, IS NOT NULL;
 *   - AND, OR, NOT and parentheses, keywords case-insensitive.
 * SQL three-valued logic: a comparison with a missing property, or between
 * different types, is UNKNOWN; a message matches only when the whole
 * selector is TRUE. Not supported: arithmetic, LIKE, IN, BETWEEN, ESCAPE.
 */
#ifndef HAMQ_CORE_FILTER_H
#define HAMQ_CORE_FILTER_H

#include <stdbool.h>
#include <stddef.h>

#include "hamq/msgproto.h"

struct core_filter;

/* NULL on error with a message in err ("selector: expected ')' at 12"). */
struct core_filter *core_filter_compile(const char *text, char *err, size_t errlen);
void core_filter_free(struct core_filter *f);
/* m: a decoded message. */
bool core_filter_match(const struct core_filter *f, const struct hmsg *m);

#endif
