/* Placeholder until the agent lands: sleeps as init. */
#include <unistd.h>
int main(void) { for (;;) pause(); }
