/* pause: the sandbox process of every pod on the test node, and the init (pid 1) of the
 * node's own namespaces. Sleeps until SIGTERM or SIGINT; as pid 1 it reaps every orphan it
 * inherits. Built static (`gcc -Os -static`) so an image needs nothing but this file. */
#include <signal.h>
#include <stddef.h>
#include <sys/wait.h>
#include <unistd.h>

static void quit(int sig) {
  (void)sig;
  _exit(0);
}

static void reap(int sig) {
  (void)sig;
  while (waitpid(-1, NULL, WNOHANG) > 0) {
  }
}

int main(void) {
  struct sigaction sa = {0};
  sa.sa_handler = quit;
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  sa.sa_handler = reap;
  sa.sa_flags = SA_NOCLDSTOP | SA_RESTART;
  sigaction(SIGCHLD, &sa, NULL);
  for (;;) {
    pause();
  }
}
