/* The sandbox ("pause") container of the local cluster: it holds a pod's namespaces and
 * does nothing else. As PID 1 of the pod it reaps orphans and exits cleanly on SIGINT or
 * SIGTERM. Built static (gcc -static) into a FROM-scratch image by
 * cinepulse_devstack.cluster.images, since no registry can be reached here. */
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static void stop(int sig) { _exit(128 + sig); }

static void reap(int sig) {
    (void)sig;
    while (waitpid(-1, NULL, WNOHANG) > 0) {
    }
}

int main(void) {
    struct sigaction term = {.sa_handler = stop}, child = {.sa_handler = reap};
    sigaction(SIGINT, &term, NULL);
    sigaction(SIGTERM, &term, NULL);
    child.sa_flags = SA_NOCLDSTOP;
    sigaction(SIGCHLD, &child, NULL);
    for (;;) pause();
}
