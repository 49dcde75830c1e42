/* journal_bench — placeholder until the benchmark lands (next commit). */
#include <stdio.h>

int main(void)
{
    fprintf(stderr, "journal_bench: not written yet\n");
    return 1;
}
