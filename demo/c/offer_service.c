/* The demo's offer service in C: libcircuit through include/circuit.h.
 *
 *     GET /offer?user=U    an offer from the partner, or the cold offer
 *     GET /offer/circuit   the `partner` breaker as JSON (state, rates,
 *                          counts, transitions with CLOCK_MONOTONIC times)
 *     GET /metrics         Prometheus text: the library's registry renderer,
 *                          then this service's own demo_offers_total
 *
 * An HTTP/1.0 server (one thread per connection, capped) and a raw-socket
 * HTTP client to the partner, both on loopback. The partner is called
 * through the breaker named "partner" of a registry, configured like the
 * Python and Go services (demo/README.md). With --redis the registry's
 * breakers are shared with the other instances through the library's fleet
 * sync (circuit_sync_start).
 *
 * Prints "READY http://127.0.0.1:PORT" when it listens.
 *
 * Build (ci/demo.sh does): cc -std=c11 -O2 -pthread -Iinclude offer_service.c
 *     -Ldemo/.build/lib -lcircuit -Wl,-rpath,demo/.build/lib */
#define _GNU_SOURCE

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "circuit.h"

#define MS 1000000ull
#define MAX_EVENTS 256
#define MAX_CONNECTIONS 128
#define COLD_OFFER "free delivery on your next order"

/* ---- settings ----------------------------------------------------------- */

static struct {
  const char *instance;
  const char *partner_url;
  char partner_host[64];
  uint16_t partner_port;
  char partner_path[256];
  uint16_t port;
  unsigned open_ms, slow_ms, timeout_ms;
  const char *redis;
  const char *namespace_;
  unsigned quorum;
} opt = {"c", NULL, "", 0, "", 0, 2000, 300, 2000, "", "demo", 0};

static const circuit_registry *registry;
static const circuit_breaker *partner;
static int64_t mono_offset_ns; /* CLOCK_MONOTONIC minus the library's clock */
static volatile sig_atomic_t stopping;
static atomic_int connections;

static atomic_ullong n_requests, n_partner, n_cold_rejected, n_cold_error;

/* ---- small helpers ------------------------------------------------------ */

static uint64_t mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char *what) {
  char msg[512];
  size_t len = 0;
  if (circuit_last_error(msg, sizeof msg, &len) != CIRCUIT_RESULT_OK) strcpy(msg, "?");
  fprintf(stderr, "offer_service_c: %s: %s\n", what, msg);
  exit(1);
}

static void check(circuit_result rc, const char *what) {
  if (rc != CIRCUIT_RESULT_OK) die(what);
}

/* A growable string. */
typedef struct {
  char *p;
  size_t len, cap;
} buf;

static void buf_reserve(buf *b, size_t more) {
  if (b->len + more + 1 <= b->cap) return;
  size_t cap = b->cap ? b->cap : 1024;
  while (cap < b->len + more + 1) cap *= 2;
  char *p = realloc(b->p, cap);
  if (!p) {
    fprintf(stderr, "offer_service_c: out of memory\n");
    exit(1);
  }
  b->p = p;
  b->cap = cap;
}

static void bprintf(buf *b, const char *fmt, ...) {
  va_list ap;
  char probe[1];
  va_start(ap, fmt);
  int n = vsnprintf(probe, sizeof probe, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  buf_reserve(b, (size_t)n);
  va_start(ap, fmt);
  vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
}

/* Appends s as a JSON string (quotes included). */
static void bjson(buf *b, const char *s) {
  bprintf(b, "\"");
  for (; *s; s++) {
    unsigned char ch = (unsigned char)*s;
    if (ch == '"' || ch == '\\')
      bprintf(b, "\\%c", ch);
    else if (ch < 0x20)
      bprintf(b, "\\u%04x", ch);
    else
      bprintf(b, "%c", ch);
  }
  bprintf(b, "\"");
}

static int send_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

static void set_timeout(int fd, int which, uint64_t ns) {
  struct timeval tv;
  if (ns < 1000) ns = 1000;
  tv.tv_sec = (time_t)(ns / 1000000000ull);
  tv.tv_usec = (suseconds_t)((ns % 1000000000ull) / 1000);
  setsockopt(fd, SOL_SOCKET, which, &tv, sizeof tv);
}

/* ---- transitions -------------------------------------------------------- */

typedef struct {
  uint32_t from, to, reason, generation;
  uint64_t mono_ns;
} event_rec;

static pthread_mutex_t events_lock = PTHREAD_MUTEX_INITIALIZER;
static event_rec events[MAX_EVENTS];
static size_t events_total; /* events[i % MAX_EVENTS] for the last MAX_EVENTS */

/* Runs on the thread that made the transition, with no library lock held. */
static void on_transition(void *userdata, const circuit_event *ev) {
  (void)userdata;
  pthread_mutex_lock(&events_lock);
  event_rec *r = &events[events_total % MAX_EVENTS];
  r->from = ev->from;
  r->to = ev->to;
  r->reason = ev->reason;
  r->generation = ev->generation;
  r->mono_ns = (uint64_t)((int64_t)ev->at_ns + mono_offset_ns);
  events_total++;
  pthread_mutex_unlock(&events_lock);
}

/* ---- fleet sync --------------------------------------------------------- */

static circuit_sync *fleet;
static char sync_off_reason[160] = "off";

/* Shares the registry's breakers with the other instances through Redis:
 * the library's worker threads publish this registry's transitions and
 * apply the others' (reason "remote"). Never on the call path. */
static void sync_start(void) {
  if (!opt.redis[0]) return;
  circuit_result rc = circuit_sync_start(registry, opt.redis, strlen(opt.redis), opt.namespace_,
                                         strlen(opt.namespace_), &fleet);
  if (rc != CIRCUIT_RESULT_OK) {
    char msg[128];
    size_t len;
    if (circuit_last_error(msg, sizeof msg, &len) != CIRCUIT_RESULT_OK) strcpy(msg, "?");
    snprintf(sync_off_reason, sizeof sync_off_reason, "failed: %s", msg);
    fprintf(stderr, "offer_service_c: circuit_sync_start: %s\n", msg);
    fleet = NULL;
    return;
  }
  if (opt.quorum > 0) {
    /* Open fleet-wide only once `quorum` instances tripped (30 s window). */
    rc = circuit_sync_set_fleet_policy(fleet, "partner", 7, opt.quorum, 0.0, 30000000000ull);
    if (rc != CIRCUIT_RESULT_OK)
      fprintf(stderr, "offer_service_c: circuit_sync_set_fleet_policy: %s\n", circuit_result_str(rc));
  }
}

/* Appends the sync object of /offer/circuit: "connected", "degraded: <why>",
 * "stopped", or why sync is off; and the worker's counters. */
static void sync_json(buf *b) {
  circuit_sync_stats st;
  memset(&st, 0, sizeof st);
  st.struct_size = sizeof st;
  if (!fleet) {
    bprintf(b, "{\"enabled\":false,\"status\":");
    bjson(b, sync_off_reason);
    bprintf(b, "}");
    return;
  }
  if (circuit_sync_status(fleet, &st) != CIRCUIT_RESULT_OK) {
    bprintf(b, "{\"enabled\":true,\"status\":\"status failed\"}");
    return;
  }
  char text[256] = "stopped";
  if (st.state == CIRCUIT_SYNC_CONNECTED) {
    snprintf(text, sizeof text, "connected");
  } else if (st.state == CIRCUIT_SYNC_DEGRADED) {
    char why[192] = "";
    size_t len = 0;
    if (circuit_sync_last_error(fleet, why, sizeof why, &len) != CIRCUIT_RESULT_OK) why[0] = 0;
    snprintf(text, sizeof text, "degraded%s%s", why[0] ? ": " : "", why);
  }
  bprintf(b, "{\"enabled\":true,\"status\":");
  bjson(b, text);
  bprintf(b, ",\"published\":%llu,\"applied\":%llu,\"refused\":%llu,\"reconnects\":%llu,\"votes\":%llu}",
          (unsigned long long)st.published, (unsigned long long)st.applied,
          (unsigned long long)st.refused, (unsigned long long)st.reconnects,
          (unsigned long long)st.votes);
}

/* Stops the worker (joins its threads, bounded). The handle is not freed:
 * connection threads may still read its status (STOPPED) until exit. */
static void sync_stop(void) {
  if (fleet) circuit_sync_stop(fleet);
}

/* ---- the partner call --------------------------------------------------- */

typedef struct {
  circuit_outcome outcome;
  int status;      /* HTTP status, 0 when there was none */
  char offer[160]; /* the partner's offer text */
} partner_answer;

/* GET the partner's offers for `user` within the timeout. */
static void call_partner(const char *user, partner_answer *out) {
  uint64_t deadline = mono_ns() + (uint64_t)opt.timeout_ms * MS;
  struct sockaddr_in addr;
  char req[512], resp[4096];
  size_t got = 0;
  int fd, one = 1;

  out->outcome = CIRCUIT_OUTCOME_FAILURE;
  out->status = 0;
  out->offer[0] = 0;
  fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  set_timeout(fd, SO_SNDTIMEO, (uint64_t)opt.timeout_ms * MS); /* bounds connect() too */
  memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_port = htons(opt.partner_port);
  inet_pton(AF_INET, opt.partner_host, &addr.sin_addr);
  if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
    if (errno == EINPROGRESS || errno == EAGAIN || errno == ETIMEDOUT)
      out->outcome = CIRCUIT_OUTCOME_TIMEOUT;
    close(fd);
    return;
  }
  int n = snprintf(req, sizeof req,
                   "GET %s?user=%s&from=%s HTTP/1.0\r\nHost: %s:%u\r\nUser-Agent: "
                   "demo-offer-c\r\n\r\n",
                   opt.partner_path, user, opt.instance, opt.partner_host,
                   (unsigned)opt.partner_port);
  if (n < 0 || (size_t)n >= sizeof req || send_all(fd, req, (size_t)n) != 0) {
    close(fd);
    return;
  }
  for (;;) {
    uint64_t now = mono_ns();
    if (now >= deadline) {
      out->outcome = CIRCUIT_OUTCOME_TIMEOUT;
      close(fd);
      return;
    }
    set_timeout(fd, SO_RCVTIMEO, deadline - now);
    if (got + 1 >= sizeof resp) break;
    ssize_t r = recv(fd, resp + got, sizeof resp - 1 - got, 0);
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) out->outcome = CIRCUIT_OUTCOME_TIMEOUT;
      close(fd);
      return;
    }
    if (r == 0) break; /* HTTP/1.0: the body ends with the connection */
    got += (size_t)r;
  }
  close(fd);
  resp[got] = 0;
  if (sscanf(resp, "HTTP/%*d.%*d %d", &out->status) != 1) return;
  if (out->status < 200 || out->status >= 300) return; /* 5xx (and anything odd): a failure */
  const char *body = strstr(resp, "\r\n\r\n");
  const char *o = body ? strstr(body, "\"offer\"") : NULL;
  if (o && (o = strchr(o + 7, '"')) != NULL) {
    size_t i = 0;
    for (o++; *o && *o != '"' && i + 1 < sizeof out->offer; o++) out->offer[i++] = *o;
    out->offer[i] = 0;
  }
  if (!out->offer[0]) return; /* a 200 without an offer: a failure too */
  out->outcome = CIRCUIT_OUTCOME_SUCCESS;
}

/* ---- handlers ----------------------------------------------------------- */

static void respond(int fd, int status, const char *ctype, const char *body, size_t len) {
  char head[256];
  const char *reason = status == 200 ? "OK" : status == 404 ? "Not Found" : "Service Unavailable";
  int n = snprintf(head, sizeof head,
                   "HTTP/1.0 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                   "Connection: close\r\n\r\n",
                   status, reason, ctype, len);
  if (send_all(fd, head, (size_t)n) == 0) send_all(fd, body, len);
}

static void handle_offer(int fd, const char *query) {
  char user[64] = "anonymous";
  const char *u = query ? strstr(query, "user=") : NULL;
  if (u) {
    size_t i = 0;
    for (u += 5; *u && *u != '&' && i + 1 < sizeof user; u++)
      if ((*u >= '0' && *u <= '9') || (*u >= 'a' && *u <= 'z') || (*u >= 'A' && *u <= 'Z'))
        user[i++] = *u;
    user[i] = 0;
  }
  buf b = {0};
  circuit_permit permit;
  uint64_t retry_after = 0;
  circuit_result rc = circuit_breaker_acquire(partner, &permit, &retry_after);
  atomic_fetch_add(&n_requests, 1);
  bprintf(&b, "{\"instance\":");
  bjson(&b, opt.instance);
  bprintf(&b, ",\"user\":");
  bjson(&b, user);
  if (rc != CIRCUIT_RESULT_OK) {
    /* Rejected: the cold offer at once, the partner is not called. */
    atomic_fetch_add(&n_cold_rejected, 1);
    bprintf(&b, ",\"offer\":\"%s\",\"source\":\"cold\",\"why\":\"circuit %s\"", COLD_OFFER,
            circuit_result_str(rc));
    if (retry_after != CIRCUIT_RETRY_AFTER_UNKNOWN)
      bprintf(&b, ",\"retry_after\":%.3f", (double)retry_after / 1e9);
  } else {
    partner_answer a;
    uint64_t start = mono_ns();
    call_partner(user, &a);
    circuit_breaker_record(partner, permit, a.outcome, mono_ns() - start);
    if (a.outcome == CIRCUIT_OUTCOME_SUCCESS) {
      atomic_fetch_add(&n_partner, 1);
      bprintf(&b, ",\"offer\":");
      bjson(&b, a.offer);
      bprintf(&b, ",\"source\":\"partner\"");
    } else {
      atomic_fetch_add(&n_cold_error, 1);
      bprintf(&b, ",\"offer\":\"%s\",\"source\":\"cold\",\"why\":\"partner %s (status %d)\"",
              COLD_OFFER, a.outcome == CIRCUIT_OUTCOME_TIMEOUT ? "timeout" : "error", a.status);
    }
  }
  bprintf(&b, "}");
  respond(fd, 200, "application/json", b.p, b.len);
  free(b.p);
}

static void handle_circuit(int fd) {
  circuit_metrics m;
  memset(&m, 0, sizeof m);
  m.struct_size = sizeof m;
  check(circuit_breaker_metrics(partner, &m), "circuit_breaker_metrics");
  unsigned long long req = atomic_load(&n_requests), ok = atomic_load(&n_partner),
                     rej = atomic_load(&n_cold_rejected), err = atomic_load(&n_cold_error);
  buf b = {0};
  bprintf(&b, "{\"instance\":");
  bjson(&b, opt.instance);
  bprintf(&b,
          ",\"language\":\"C\",\"pid\":%d,\"breaker\":\"partner\",\"state\":\"%s\","
          "\"generation\":%u,\"failure_rate\":%.4f,\"slow_call_rate\":%.4f,"
          "\"window_calls\":%llu,",
          (int)getpid(), circuit_state_str(m.state), m.generation, m.failure_rate,
          m.slow_call_rate, (unsigned long long)m.window_calls);
  bprintf(&b,
          "\"requests\":%llu,\"partner_ok\":%llu,\"fallbacks\":%llu,\"fallbacks_rejected\":%llu,"
          "\"fallbacks_error\":%llu,",
          req, ok, rej + err, rej, err);
  bprintf(&b,
          "\"successes\":%llu,\"failures\":%llu,\"timeouts\":%llu,\"slow\":%llu,"
          "\"rejected\":%llu,\"transitions_to\":{",
          (unsigned long long)m.successes, (unsigned long long)m.failures,
          (unsigned long long)m.timeouts, (unsigned long long)m.slow,
          (unsigned long long)(m.rejected_open + m.rejected_forced_open +
                               m.rejected_half_open_full));
  for (uint32_t s = 0; s < CIRCUIT_STATE_COUNT; s++)
    bprintf(&b, "%s\"%s\":%llu", s ? "," : "", circuit_state_str(s),
            (unsigned long long)m.transitions_to[s]);
  bprintf(&b, "},\"latency_ms\":");
  circuit_latency lat;
  memset(&lat, 0, sizeof lat);
  lat.struct_size = sizeof lat;
  if (circuit_breaker_latency(partner, &lat) == CIRCUIT_RESULT_OK)
    bprintf(&b, "{\"count\":%llu,\"p50\":%.3f,\"p99\":%.3f,\"max\":%.3f}",
            (unsigned long long)lat.count, (double)lat.p50_ns / 1e6, (double)lat.p99_ns / 1e6,
            (double)lat.max_ns / 1e6);
  else
    bprintf(&b, "null");
  bprintf(&b,
          ",\"config\":{\"consecutive_failures\":5,\"failure_rate\":0.5,\"slow_call_rate\":0.5,"
          "\"slow_call_ms\":%u,\"minimum_calls\":10,\"count_window\":20,\"open_ms\":%u,"
          "\"max_open_ms\":%u,\"backoff_multiplier\":2.0,\"jitter\":0.1,\"half_open_probes\":2,"
          "\"half_open_successes\":2,\"probe_lease_ms\":%u,\"latency_histogram_ms\":2000,"
          "\"timeout_ms\":%u},",
          opt.slow_ms, opt.open_ms, 2 * opt.open_ms, opt.timeout_ms + 1000, opt.timeout_ms);
  bprintf(&b, "\"sync\":");
  sync_json(&b);
  bprintf(&b, ",\"events\":[");
  pthread_mutex_lock(&events_lock);
  size_t first = events_total > MAX_EVENTS ? events_total - MAX_EVENTS : 0;
  for (size_t i = first; i < events_total; i++) {
    const event_rec *r = &events[i % MAX_EVENTS];
    bprintf(&b,
            "%s{\"from\":\"%s\",\"to\":\"%s\",\"reason\":\"%s\",\"generation\":%u,"
            "\"mono_ns\":%llu}",
            i > first ? "," : "", circuit_state_str(r->from), circuit_state_str(r->to),
            circuit_reason_str(r->reason), r->generation, (unsigned long long)r->mono_ns);
  }
  pthread_mutex_unlock(&events_lock);
  bprintf(&b, "]}");
  respond(fd, 200, "application/json", b.p, b.len);
  free(b.p);
}

static void handle_metrics(int fd) {
  size_t len = 0;
  buf b = {0};
  circuit_result rc = circuit_registry_render_prometheus(registry, NULL, 0, &len);
  /* Required-length protocol: ask, allocate, render (the text announced by
   * BUFFER_TOO_SMALL is kept for this thread, so the second call fits). */
  for (int tries = 0; rc == CIRCUIT_RESULT_BUFFER_TOO_SMALL && tries < 3; tries++) {
    buf_reserve(&b, len + 1);
    rc = circuit_registry_render_prometheus(registry, b.p, b.cap, &len);
  }
  if (rc != CIRCUIT_RESULT_OK) die("circuit_registry_render_prometheus");
  b.len = len;
  bprintf(&b,
          "# HELP demo_offers_total Offers answered by this demo instance, by source.\n"
          "# TYPE demo_offers_total counter\n"
          "demo_offers_total{instance=\"%s\",source=\"partner\"} %llu\n"
          "demo_offers_total{instance=\"%s\",source=\"cold_rejected\"} %llu\n"
          "demo_offers_total{instance=\"%s\",source=\"cold_error\"} %llu\n",
          opt.instance, (unsigned long long)atomic_load(&n_partner), opt.instance,
          (unsigned long long)atomic_load(&n_cold_rejected), opt.instance,
          (unsigned long long)atomic_load(&n_cold_error));
  respond(fd, 200, "text/plain; version=0.0.4; charset=utf-8", b.p, b.len);
  free(b.p);
}

static void *serve_connection(void *arg) {
  int fd = (int)(intptr_t)arg;
  char req[8192];
  size_t got = 0;
  set_timeout(fd, SO_RCVTIMEO, 5000 * MS);
  set_timeout(fd, SO_SNDTIMEO, 5000 * MS);
  while (got + 1 < sizeof req) {
    ssize_t r = recv(fd, req + got, sizeof req - 1 - got, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    got += (size_t)r;
    req[got] = 0;
    if (strstr(req, "\r\n\r\n")) break;
  }
  req[got] = 0;
  char method[8], target[1024];
  if (sscanf(req, "%7s %1023s", method, target) == 2 && strcmp(method, "GET") == 0) {
    char *query = strchr(target, '?');
    if (query) *query++ = 0;
    if (strcmp(target, "/offer") == 0)
      handle_offer(fd, query);
    else if (strcmp(target, "/offer/circuit") == 0)
      handle_circuit(fd);
    else if (strcmp(target, "/metrics") == 0)
      handle_metrics(fd);
    else
      respond(fd, 404, "application/json", "{\"error\":\"not found\"}", 21);
  } else if (got > 0) {
    respond(fd, 404, "application/json", "{\"error\":\"not found\"}", 21);
  }
  close(fd);
  atomic_fetch_sub(&connections, 1);
  return NULL;
}

/* ---- setup -------------------------------------------------------------- */

static void usage(void) {
  fprintf(stderr,
          "usage: offer_service_c --partner http://127.0.0.1:PORT/offers [--instance NAME]\n"
          "       [--port N] [--open-ms N] [--slow-ms N] [--timeout-ms N]\n"
          "       [--redis redis://127.0.0.1:PORT] [--namespace NS] [--quorum N]\n");
  exit(2);
}

static unsigned parse_uint(const char *s, unsigned lo, unsigned hi) {
  char *end;
  unsigned long v = strtoul(s, &end, 10);
  if (*s == 0 || *end != 0 || v < lo || v > hi) usage();
  return (unsigned)v;
}

static void parse_args(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (i + 1 >= argc) usage();
    const char *v = argv[++i];
    if (strcmp(a, "--instance") == 0)
      opt.instance = v;
    else if (strcmp(a, "--partner") == 0)
      opt.partner_url = v;
    else if (strcmp(a, "--port") == 0)
      opt.port = (uint16_t)parse_uint(v, 0, 65535);
    else if (strcmp(a, "--open-ms") == 0)
      opt.open_ms = parse_uint(v, 1, 3600000);
    else if (strcmp(a, "--slow-ms") == 0)
      opt.slow_ms = parse_uint(v, 1, 3600000);
    else if (strcmp(a, "--timeout-ms") == 0)
      opt.timeout_ms = parse_uint(v, 1, 3600000);
    else if (strcmp(a, "--redis") == 0)
      opt.redis = v;
    else if (strcmp(a, "--namespace") == 0)
      opt.namespace_ = v;
    else if (strcmp(a, "--quorum") == 0)
      opt.quorum = parse_uint(v, 0, 1000);
    else
      usage();
  }
  if (!opt.partner_url) usage();
  unsigned port = 0;
  if (sscanf(opt.partner_url, "http://%63[0-9.]:%u%255s", opt.partner_host, &port,
             opt.partner_path) != 3 ||
      port == 0 || port > 65535)
    usage();
  opt.partner_port = (uint16_t)port;
}

/* The partner breaker's config: the same numbers in all three services. */
static void make_registry(void) {
  circuit_config_builder *cb = circuit_config_builder_new();
  circuit_config *cfg = NULL;
  if (!cb) die("circuit_config_builder_new");
  check(circuit_config_builder_set_consecutive_failures(cb, 5), "consecutive failures");
  check(circuit_config_builder_set_failure_rate(cb, 0.5), "failure rate");
  check(circuit_config_builder_set_slow_call(cb, 0.5, (uint64_t)opt.slow_ms * MS), "slow call");
  check(circuit_config_builder_set_minimum_calls(cb, 10), "minimum calls");
  check(circuit_config_builder_set_count_window(cb, 20), "count window");
  check(circuit_config_builder_set_max_open_duration(cb, 2ull * opt.open_ms * MS), "max open");
  check(circuit_config_builder_set_open_duration(cb, (uint64_t)opt.open_ms * MS), "open duration");
  check(circuit_config_builder_set_backoff_multiplier(cb, 2.0), "backoff");
  check(circuit_config_builder_set_jitter(cb, 0.1), "jitter");
  check(circuit_config_builder_set_half_open_probes(cb, 2), "probes");
  check(circuit_config_builder_set_half_open_successes(cb, 2), "probe successes");
  check(circuit_config_builder_set_probe_lease(cb, (uint64_t)(opt.timeout_ms + 1000) * MS),
        "probe lease");
  check(circuit_config_builder_set_latency_histogram(cb, 2000 * MS), "latency histogram");
  check(circuit_config_builder_build(cb, &cfg), "config");
  circuit_config_builder_free(cb);

  check(circuit_registry_new(NULL, 0, 0, NULL, &registry), "circuit_registry_new");
  check(circuit_registry_set_config(registry, "partner", 7, cfg), "set_config");
  circuit_config_free(cfg);
  uint64_t id;
  check(circuit_registry_add_listener(registry, on_transition, NULL, NULL, &id), "add_listener");
  check(circuit_registry_get_or_create(registry, "partner", 7, &partner), "get_or_create");

  /* The library's clock counts from a per-process origin; this offset turns
   * its readings into CLOCK_MONOTONIC, comparable across processes. */
  circuit_clock *clk = circuit_clock_monotonic_new();
  int64_t best = INT64_MAX;
  for (int i = 0; i < 5; i++) {
    uint64_t lib_now = 0, before = mono_ns();
    circuit_clock_now(clk, &lib_now);
    int64_t off = (int64_t)before - (int64_t)lib_now;
    if (off < best) best = off;
  }
  circuit_clock_free(clk);
  mono_offset_ns = best;
}

static void on_signal(int sig) {
  (void)sig;
  stopping = 1;
}

int main(int argc, char **argv) {
  parse_args(argc, argv);
  if (circuit_abi_version() != CIRCUIT_ABI_VERSION) {
    fprintf(stderr, "offer_service_c: libcircuit ABI %u, built for %u\n", circuit_abi_version(),
            (unsigned)CIRCUIT_ABI_VERSION);
    return 1;
  }
  make_registry();
  sync_start();

  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);

  struct sockaddr_in addr;
  socklen_t alen = sizeof addr;
  int one = 1;
  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (lfd < 0) {
    perror("socket");
    return 1;
  }
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(opt.port);
  if (bind(lfd, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(lfd, 256) != 0 ||
      getsockname(lfd, (struct sockaddr *)&addr, &alen) != 0) {
    perror("listen");
    return 1;
  }
  printf("READY http://127.0.0.1:%u\n", (unsigned)ntohs(addr.sin_port));
  fflush(stdout);

  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&attr, 256 * 1024);
  while (!stopping) {
    struct pollfd p = {lfd, POLLIN, 0};
    if (poll(&p, 1, 200) <= 0) continue;
    int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0) continue;
    if (atomic_fetch_add(&connections, 1) >= MAX_CONNECTIONS) {
      atomic_fetch_sub(&connections, 1);
      respond(fd, 503, "application/json", "{\"error\":\"busy\"}", 16);
      close(fd);
      continue;
    }
    pthread_t t;
    if (pthread_create(&t, &attr, serve_connection, (void *)(intptr_t)fd) != 0) {
      atomic_fetch_sub(&connections, 1);
      close(fd);
    }
  }
  close(lfd);
  sync_stop();
  /* Connection threads may still be running: leave the registry and the
   * breaker to the process's exit rather than free them under their feet. */
  return 0;
}
