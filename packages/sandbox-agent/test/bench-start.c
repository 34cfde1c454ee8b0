/* Measures fork+exec of the agent until its HELLO arrives on a listening unix socket.
 * usage: bench-start AGENT_BINARY SOCKET_PATH [N] */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}
static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
  if (argc < 3) return 2;
  int n = argc > 3 ? atoi(argv[3]) : 200;
  double *t = calloc(n, sizeof *t);
  struct sockaddr_un sa = { .sun_family = AF_UNIX };
  strncpy(sa.sun_path, argv[2], sizeof sa.sun_path - 1);
  unlink(argv[2]);
  int l = socket(AF_UNIX, SOCK_STREAM, 0);
  if (!t || l < 0 || bind(l, (struct sockaddr *)&sa, sizeof sa) || listen(l, 8)) return 1;
  for (int i = 0; i < n; i++) {
    double t0 = now_ms();
    pid_t p = fork();
    if (p == 0) {
      execl(argv[1], "hangar-agent", "--socket", argv[2], (char *)NULL);
      _exit(127);
    }
    int c = accept(l, NULL, NULL);
    char b[512];
    if (c < 0 || read(c, b, sizeof b) <= 0) return 1;
    t[i] = now_ms() - t0;
    close(c);
    kill(p, SIGKILL);
    waitpid(p, NULL, 0);
  }
  unlink(argv[2]);
  qsort(t, n, sizeof *t, cmp);
  printf("fork+exec agent -> HELLO received: p50 %.3f ms, p99 %.3f ms (n=%d)\n", t[n / 2], t[n * 99 / 100], n);
  return 0;
}
