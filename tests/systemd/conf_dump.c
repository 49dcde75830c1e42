/*
 * conf_dump — test helper: loads a hamq configuration file with the daemons'
 * own parser (common/config.c) and prints every key with its value
 * (config_dump), or the parser's error and exit status 2.
 *
 *   conf_dump            the defaults
 *   conf_dump FILE       defaults, then FILE
 */
#include <stdio.h>

#include "hamq/config.h"

int main(int argc, char **argv)
{
    struct hamq_config cfg;
    char err[HAMQ_CONFIG_ERR_MAX];

    if (argc > 2) {
        fprintf(stderr, "usage: conf_dump [FILE]\n");
        return 2;
    }
    config_defaults(&cfg);
    if (argc == 2 && config_load(&cfg, argv[1], err, sizeof(err)) < 0) {
        fprintf(stderr, "conf_dump: %s\n", err);
        return 2;
    }
    return config_dump(&cfg, 1) < 0 ? 1 : 0;
}
