/* A breaker protecting a real call: a TCP connect to a loopback port, with
 * a fallback answer while the dependency is down.
 *
 * The example plays both sides. It listens on an ephemeral loopback port
 * (the "dependency"), connects through the breaker while the listener is up,
 * closes the listener so connects fail with ECONNREFUSED, watches the
 * breaker open and the fallback answer instantly without touching the
 * network, then brings the listener back and watches one probe close the
 * breaker again. Exits 0 when that is what happened.
 *
 * Build: cc -std=c11 tcp_connect.c $(pkg-config --cflags --libs circuit) */
#define _POSIX_C_SOURCE 200809L

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "circuit.h"

#define MS 1000000ull

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void sleep_ms(unsigned ms) {
  struct timespec ts;
  ts.tv_sec = ms / 1000;
  ts.tv_nsec = (long)(ms % 1000) * 1000000L;
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

/* The dependency: a listening socket on 127.0.0.1:port (port 0 = any). */
static int listen_on(uint16_t port, uint16_t *bound) {
  struct sockaddr_in addr;
  socklen_t len = sizeof addr;
  int one = 1;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  if (bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(fd, 16) != 0 ||
      getsockname(fd, (struct sockaddr *)&addr, &len) != 0) {
    close(fd);
    return -1;
  }
  *bound = ntohs(addr.sin_port);
  return fd;
}

/* The protected call: connect, and hang up at once. Returns 0 or errno. */
static int tcp_connect(uint16_t port) {
  struct sockaddr_in addr;
  int err = 0;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return errno;
  memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) err = errno;
  close(fd);
  return err;
}

typedef struct {
  int calls, connected, failed, fallbacks;
} tally;

/* One request: through the breaker to the dependency, or to the fallback. */
static void request(const circuit_breaker *b, uint16_t port, int listener, tally *t) {
  circuit_permit permit;
  uint64_t retry_after_ns = 0, start, elapsed;
  uint32_t state = 0;
  circuit_result rc = circuit_breaker_acquire(b, &permit, &retry_after_ns);
  int err;

  t->calls++;
  if (rc != CIRCUIT_RESULT_OK) {
    t->fallbacks++;
    printf("call %2d: %s -> fallback (cached answer), retry in %llu ms\n", t->calls,
           circuit_result_str(rc), (unsigned long long)(retry_after_ns / MS));
    return;
  }
  start = now_ns();
  err = tcp_connect(port);
  elapsed = now_ns() - start;
  circuit_breaker_record(b, permit, err == 0 ? CIRCUIT_OUTCOME_SUCCESS : CIRCUIT_OUTCOME_FAILURE,
                         elapsed);
  if (err == 0) {
    int conn = accept(listener, NULL, NULL); /* the dependency's side */
    if (conn >= 0) close(conn);
    t->connected++;
  } else {
    t->failed++;
  }
  circuit_breaker_state(b, &state);
  printf("call %2d: %sconnect %s in %llu us -> breaker %s\n", t->calls,
         (permit.flags & CIRCUIT_PERMIT_PROBE) ? "probe " : "", err == 0 ? "ok" : strerror(err),
         (unsigned long long)(elapsed / 1000), circuit_state_str(state));
}

int main(void) {
  circuit_config_builder *cb = circuit_config_builder_new();
  circuit_config *cfg = NULL;
  const circuit_breaker *b = NULL;
  tally t = {0, 0, 0, 0};
  uint16_t port = 0, again = 0;
  uint32_t state = 99;
  circuit_metrics m;
  int listener, i;

  if (circuit_abi_version() != CIRCUIT_ABI_VERSION) {
    fprintf(stderr, "libcircuit ABI %u, built for %u\n", circuit_abi_version(),
            (unsigned)CIRCUIT_ABI_VERSION);
    return 1;
  }
  /* Three consecutive failures open the breaker for 200 ms. */
  if (circuit_config_builder_set_consecutive_failures(cb, 3) != CIRCUIT_RESULT_OK ||
      circuit_config_builder_set_open_duration(cb, 200 * MS) != CIRCUIT_RESULT_OK ||
      circuit_config_builder_set_jitter(cb, 0.0) != CIRCUIT_RESULT_OK ||
      circuit_config_builder_build(cb, &cfg) != CIRCUIT_RESULT_OK ||
      circuit_breaker_new(cfg, NULL, &b) != CIRCUIT_RESULT_OK) {
    char msg[256];
    size_t len;
    circuit_last_error(msg, sizeof msg, &len);
    fprintf(stderr, "setup failed: %s\n", msg);
    return 1;
  }
  circuit_config_free(cfg);
  circuit_config_builder_free(cb);

  listener = listen_on(0, &port);
  if (listener < 0) {
    perror("listen");
    return 1;
  }
  printf("dependency listening on 127.0.0.1:%u\n", (unsigned)port);
  for (i = 0; i < 3; i++) request(b, port, listener, &t);

  printf("-- dependency goes down\n");
  close(listener);
  for (i = 0; i < 6; i++) request(b, port, -1, &t);

  printf("-- dependency comes back; waiting out the open period\n");
  listener = listen_on(port, &again);
  if (listener < 0) {
    perror("listen again");
    return 1;
  }
  sleep_ms(250);
  for (i = 0; i < 3; i++) request(b, port, listener, &t);
  close(listener);

  circuit_breaker_state(b, &state);
  memset(&m, 0, sizeof m);
  m.struct_size = sizeof m;
  circuit_breaker_metrics(b, &m);
  printf("%d calls: %d connected, %d failed, %d answered by the fallback; "
         "opened %llu time(s), now %s\n",
         t.calls, t.connected, t.failed, t.fallbacks,
         (unsigned long long)m.transitions_to[CIRCUIT_STATE_OPEN], circuit_state_str(state));
  circuit_breaker_free(b);

  /* Expected: 3 ok; 3 refused connects open the breaker; 3 fallbacks; one
   * probe and two more calls succeed. */
  return (t.failed == 3 && t.fallbacks == 3 && t.connected == 6 && state == CIRCUIT_STATE_CLOSED &&
          m.transitions_to[CIRCUIT_STATE_OPEN] == 1)
             ? 0
             : 1;
}
