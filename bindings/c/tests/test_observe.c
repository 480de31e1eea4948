/* C tests of libcircuit's observability and helper ABI: transition
 * callbacks (reentrant: they call back into the library, nest, remove
 * themselves), finalizers, event queues, registries (get-or-create,
 * iteration, caps, idle eviction), Prometheus text under the
 * required-length protocol, retry policies and budgets, latency histograms
 * and adaptive timeouts; each fed NULL, garbage enums, bad UTF-8 and
 * wrong-size structs. Same rules as test_circuit.c: C11 and C++ from one
 * source, -Werror, ASan/LSan/UBSan. Last line: "N passed, M failed". */

#define _POSIX_C_SOURCE 200809L

#include <assert.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "circuit.h"

#define MS 1000000ull
#define SEC 1000000000ull

static circuit_config *config_consecutive(uint32_t n, uint64_t open_ns) {
  circuit_config_builder *cb = circuit_config_builder_new();
  circuit_config *cfg = NULL;
  CHECK_RC(circuit_config_builder_set_consecutive_failures(cb, n), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_config_builder_set_open_duration(cb, open_ns), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_config_builder_set_jitter(cb, 0.0), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_config_builder_build(cb, &cfg), CIRCUIT_RESULT_OK);
  circuit_config_builder_free(cb);
  return cfg;
}

/* Admit and record `outcome` (the call must be admitted). */
static void call(const circuit_breaker *b, uint32_t outcome, uint64_t duration_ns) {
  circuit_permit p;
  CHECK_RC(circuit_breaker_acquire(b, &p, NULL), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_breaker_record(b, p, outcome, duration_ns), CIRCUIT_RESULT_OK);
}

static uint32_t state_of(const circuit_breaker *b) {
  uint32_t s = UINT32_MAX;
  CHECK_RC(circuit_breaker_state(b, &s), CIRCUIT_RESULT_OK);
  return s;
}

/* ---------- names, NULLs, garbage --------------------------------------------- */

static void test_names(void) {
  uint32_t r;
  CHECK(strcmp(circuit_result_str(CIRCUIT_RESULT_RETRY_EXHAUSTED), "CIRCUIT_RESULT_RETRY_EXHAUSTED") == 0);
  CHECK(strcmp(circuit_result_str(CIRCUIT_RESULT_BUDGET_EXHAUSTED), "CIRCUIT_RESULT_BUDGET_EXHAUSTED") == 0);
  CHECK(strcmp(circuit_result_str(CIRCUIT_RESULT_EMPTY), "CIRCUIT_RESULT_EMPTY") == 0);
  CHECK(strcmp(circuit_reason_str(CIRCUIT_REASON_CONSECUTIVE_FAILURES), "consecutive_failures") == 0);
  CHECK(strcmp(circuit_reason_str(CIRCUIT_REASON_PROBES_SUCCEEDED), "probes_succeeded") == 0);
  CHECK(strcmp(circuit_reason_str(CIRCUIT_REASON_REMOTE), "remote") == 0);
  CHECK(strcmp(circuit_reason_str(CIRCUIT_REASON_RESTORED), "restored") == 0);
  for (r = 0; r <= CIRCUIT_REASON_RESTORED; r++) CHECK(strcmp(circuit_reason_str(r), "unknown") != 0);
  CHECK(strcmp(circuit_reason_str(CIRCUIT_REASON_RESTORED + 1), "unknown") == 0);
  CHECK(strcmp(circuit_reason_str(UINT32_MAX), "unknown") == 0);
  CHECK(CIRCUIT_NAME_MAX_LEN == 1024);
}

static void noop_callback(void *userdata, const circuit_event *event) {
  (void)userdata;
  (void)event;
}

static void test_null_arguments(void) {
  circuit_config *cfg = config_consecutive(3, SEC);
  const circuit_breaker *b = NULL, *nb = NULL;
  const circuit_registry *r = NULL;
  circuit_event_queue *q = NULL;
  circuit_registry_iter *it = NULL;
  circuit_retry_policy *policy = NULL;
  circuit_retry_budget *budget = NULL;
  circuit_adaptive_timeout *rule = NULL;
  circuit_latency lat;
  circuit_event ev;
  char buf[8];
  size_t len = 77;
  uint64_t u64 = 77;

  memset(&lat, 0, sizeof lat);
  lat.struct_size = sizeof lat;
  memset(&ev, 0, sizeof ev);
  ev.struct_size = sizeof ev;

  CHECK_RC(circuit_breaker_new_named(cfg, NULL, "n", 1, &b), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_registry_new(NULL, 0, 0, NULL, &r), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_breaker_event_queue_new(b, 4, &q), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_registry_iter_new(r, &it), CIRCUIT_RESULT_OK);

  /* Free functions take NULL. */
  circuit_event_queue_free(NULL);
  circuit_registry_free(NULL);
  circuit_registry_iter_free(NULL);
  circuit_retry_policy_free(NULL);
  circuit_retry_budget_free(NULL);
  circuit_adaptive_timeout_free(NULL);

  CHECK_RC(circuit_breaker_new_named(NULL, NULL, "n", 1, &nb), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK_RC(circuit_breaker_new_named(cfg, NULL, NULL, 1, &nb), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK_RC(circuit_breaker_new_named(cfg, NULL, "n", 1, NULL), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK_RC(circuit_breaker_name(NULL, buf, sizeof buf, &len), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK_RC(circuit_breaker_name(b, buf, sizeof buf, NULL), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK_RC(circuit_breaker_name(b, NULL, 3, &len), CIRCUIT_RESULT_NULL_ARGUMENT);

  CHECK_RC(circuit_breaker_add_listener(NULL, noop_callback, NULL, NULL, &u64), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK_RC(circuit_breaker_add_listener(b, NULL, NULL, NULL, &u64), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK_ERR_MENTIONS("callback");
  CHECK_RC(circuit_breaker_add_listener(b, noop_callback, NULL, NULL, NULL), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK_RC(circuit_breaker_remove_listener(NULL, 1), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK_RC(circuit_registry_add_listener(NULL, noop_callback, NULL, NULL, &u64), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK_RC(circuit_registry_add_listener(r, NULL, NULL, NULL, &u64), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK_RC(circuit_registry_remove_listener(NULL, 1), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK(u64 == 77);

  CHECK_RC(circuit_breaker_event_queue_new(NULL, 4, &q), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK_RC(circuit_breaker_event_queue_new(b, 4, NULL), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK_RC(circuit_registry_event_queue_new(NULL, 4, &q), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK_RC(circuit_registry_event_queue_new(r, 4, NULL), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK_RC(circuit_event_queue_poll(NULL, &ev, buf, sizeof buf, &len), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK_RC(circuit_event_queue_poll(q, NULL, buf, sizeof buf, &len), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK_RC(circuit_event_queue_poll(q, &ev, NULL, 8, &len), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK_RC(circuit_event_queue_poll(q, &ev, buf, sizeof buf, NULL), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK_RC(circuit_event_queue_len(NULL, &len), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK_RC(circuit_event_queue_len(q, NULL), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK_RC(circuit_event_queue_dropped(NULL, &u64), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK_RC(circuit_event_queue_dropped(q, NULL), CIRCUIT_RESULT_NULL_ARGUMENT);

  CHECK_RC(circuit_registry_new(NULL, 0, 0, NULL, NULL), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK_RC(circuit_registry_set_config(NULL, "a", 1, cfg), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK_RC(circuit_registry_set_config(r, NULL, 1, cfg), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK_RC(circuit_registry_set_config(r, "a", 1, NULL), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK_RC(circuit_registry_get_or_create(NULL, "a", 1, &nb), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK_RC(circuit_registry_get_or_create(r, NULL, 1, &nb), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK_RC(circuit_registry_get_or_create(r, "a", 1, NULL), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK_RC(circuit_registry_get(NULL, "a", 1, &nb), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK_RC(circuit_registry_get(r, "a", 1, NULL), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK_RC(circuit_registry_remove(NULL, "a", 1), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK_RC(circuit_registry_remove(r, NULL, 1), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK_RC(circuit_registry_len(NULL, &len), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK_RC(circuit_registry_len(r, NULL), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK_RC(circuit_registry_sweep_idle(NULL, &len), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK_RC(circuit_registry_sweep_idle(r, NULL), CIRCUIT_RESULT_OK); /* optional output */
  CHECK_RC(circuit_registry_iter_new(NULL, &it), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK_RC(circuit_registry_iter_new(r, NULL), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK_RC(circuit_registry_iter_next(NULL, NULL, NULL, NULL), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK_RC(circuit_registry_render_prometheus(NULL, buf, sizeof buf, &len), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK_RC(circuit_registry_render_prometheus(r, buf, sizeof buf, NULL), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK_RC(circuit_registry_render_prometheus(r, NULL, 9, &len), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK(len == 77 && nb == NULL);

  CHECK_RC(circuit_retry_policy_new(0, 0, 1.0, 0, 0.0, SEC, 3, NULL), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK_RC(circuit_retry_policy_new(0, 0, 1.0, 0, 0.0, SEC, 3, &policy), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_retry_policy_delay(NULL, 1, 0, 0, &u64), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK_RC(circuit_retry_policy_delay(policy, 1, 0, 0, NULL), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK_RC(circuit_retry_budget_new(0.2, 10, 10 * SEC, 10, NULL, NULL), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK_RC(circuit_retry_budget_new(0.2, 10, 10 * SEC, 10, NULL, &budget), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_retry_budget_record_call(NULL), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK_RC(circuit_retry_budget_try_retry(NULL), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK_RC(circuit_retry_budget_balance(NULL, &u64, NULL, NULL), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK_RC(circuit_retry_budget_balance(budget, NULL, NULL, NULL), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_retry_next(NULL, budget, 1, 0, 0, &u64), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK_RC(circuit_retry_next(policy, budget, 1, 0, 0, NULL), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK(u64 == 77);

  CHECK_RC(circuit_breaker_latency(NULL, &lat), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK_RC(circuit_breaker_latency(b, NULL), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK_RC(circuit_breaker_latency_percentile(NULL, 50.0, &u64), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK_RC(circuit_breaker_latency_percentile(b, 50.0, NULL), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK_RC(circuit_adaptive_timeout_new(95, 1.2, MS, SEC, MS, 10, NULL), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK_RC(circuit_adaptive_timeout_new(95, 1.2, MS, SEC, MS, 10, &rule), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_breaker_recommended_timeout(NULL, rule, &u64), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK_RC(circuit_breaker_recommended_timeout(b, rule, NULL), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK(u64 == 77);

  CHECK_RC(circuit_breaker_state_word(NULL, NULL), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK_RC(circuit_breaker_record_parts(NULL, 0, 0, 0, 1), CIRCUIT_RESULT_NULL_ARGUMENT);

  circuit_adaptive_timeout_free(rule);
  circuit_retry_budget_free(budget);
  circuit_retry_policy_free(policy);
  circuit_registry_iter_free(it);
  circuit_event_queue_free(q);
  circuit_registry_free(r);
  circuit_breaker_free(b);
  circuit_config_free(cfg);
}

/* ---------- callbacks ---------------------------------------------------------- */

#define MAX_SEEN 16

typedef struct {
  const circuit_breaker *b;
  int calls, depth, max_depth, finalized;
  uint32_t from[MAX_SEEN], to[MAX_SEEN], reason[MAX_SEEN], generation[MAX_SEEN];
  uint32_t state_inside[MAX_SEEN];
  uint32_t acquire_inside[MAX_SEEN];
  char name[MAX_SEEN][16];
  uint64_t self_id;
  int remove_self_after; /* remove this listener from inside its callback */
  int reset_on_open;     /* cause a nested transition */
} recorder;

static void record_event(void *userdata, const circuit_event *e) {
  recorder *r = (recorder *)userdata;
  int i = r->calls++;
  circuit_permit p;
  r->depth++;
  if (r->depth > r->max_depth) r->max_depth = r->depth;
  if (i < MAX_SEEN) {
    r->from[i] = e->from;
    r->to[i] = e->to;
    r->reason[i] = e->reason;
    r->generation[i] = e->generation;
    snprintf(r->name[i], sizeof r->name[i], "%s", e->name);
    /* Back into the library, on this breaker, from inside the callback. */
    circuit_breaker_state(r->b, &r->state_inside[i]);
    r->acquire_inside[i] = (uint32_t)circuit_breaker_acquire(r->b, &p, NULL);
    if (r->acquire_inside[i] == CIRCUIT_RESULT_OK) {
      circuit_breaker_record(r->b, p, CIRCUIT_OUTCOME_IGNORED, 0);
    }
  }
  if (r->reset_on_open && e->to == CIRCUIT_STATE_OPEN) {
    r->reset_on_open = 0;
    circuit_breaker_reset(r->b); /* nested: this callback runs again inside */
  }
  if (r->remove_self_after && r->calls == r->remove_self_after) {
    circuit_breaker_remove_listener(r->b, r->self_id);
  }
  r->depth--;
}

static void finalize_recorder(void *userdata) { ((recorder *)userdata)->finalized++; }

static void test_callbacks(void) {
  circuit_clock *clock = circuit_clock_manual_new(0);
  circuit_config *cfg = config_consecutive(2, SEC);
  const circuit_breaker *b = NULL, *other = NULL;
  recorder rec, second;
  uint64_t id = 0, id2 = 0, unused = 0;
  int i;

  memset(&rec, 0, sizeof rec);
  memset(&second, 0, sizeof second);
  CHECK_RC(circuit_breaker_new_named(cfg, clock, "db", 2, &b), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_breaker_new(cfg, clock, &other), CIRCUIT_RESULT_OK);
  rec.b = b;
  rec.reset_on_open = 1;
  second.b = b;
  CHECK_RC(circuit_breaker_add_listener(b, record_event, &rec, finalize_recorder, &id), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_breaker_add_listener(b, record_event, &second, finalize_recorder, &id2),
           CIRCUIT_RESULT_OK);
  CHECK(id != 0 && id2 != 0 && id != id2);
  second.self_id = id2;
  second.remove_self_after = 3;

  /* Two failures trip it; the first callback resets it from inside. */
  call(b, CIRCUIT_OUTCOME_FAILURE, MS);
  call(b, CIRCUIT_OUTCOME_FAILURE, MS);
  CHECK(state_of(b) == CIRCUIT_STATE_CLOSED);
  CHECK(rec.calls == 2 && rec.max_depth == 2);
  CHECK(rec.from[0] == CIRCUIT_STATE_CLOSED && rec.to[0] == CIRCUIT_STATE_OPEN);
  CHECK(rec.reason[0] == CIRCUIT_REASON_CONSECUTIVE_FAILURES);
  CHECK(rec.from[1] == CIRCUIT_STATE_OPEN && rec.to[1] == CIRCUIT_STATE_CLOSED);
  CHECK(rec.reason[1] == CIRCUIT_REASON_RESET);
  CHECK(rec.generation[1] == rec.generation[0] + 1);
  CHECK(strcmp(rec.name[0], "db") == 0);
  /* Inside the callback the new state was already visible. */
  CHECK(rec.state_inside[0] == CIRCUIT_STATE_OPEN);
  CHECK(rec.acquire_inside[0] == CIRCUIT_RESULT_REJECTED_OPEN);
  CHECK(rec.state_inside[1] == CIRCUIT_STATE_CLOSED);
  CHECK(rec.acquire_inside[1] == CIRCUIT_RESULT_OK);
  /* The second listener saw both transitions too (the nested one first:
   * it ran inside the first listener's call, before the outer
   * transition reached the second listener). */
  CHECK(second.calls == 2);

  /* The second listener removes itself during its third call. */
  CHECK_RC(circuit_breaker_force(b, CIRCUIT_OVERRIDE_FORCED_OPEN, 0), CIRCUIT_RESULT_OK);
  CHECK(second.calls == 3 && second.finalized == 1);
  CHECK_RC(circuit_breaker_remove_listener(b, id2), CIRCUIT_RESULT_NOT_FOUND);
  CHECK_RC(circuit_breaker_clear_override(b), CIRCUIT_RESULT_OK);
  CHECK(second.calls == 3 && rec.calls == 4);

  /* Ids are per breaker: removing through another breaker fails and
   * leaves the listener in place. */
  CHECK_RC(circuit_breaker_remove_listener(other, id), CIRCUIT_RESULT_NOT_FOUND);
  CHECK_RC(circuit_breaker_remove_listener(b, 987654321), CIRCUIT_RESULT_NOT_FOUND);
  CHECK_ERR_MENTIONS("987654321");
  CHECK_RC(circuit_breaker_reset(b), CIRCUIT_RESULT_OK);
  CHECK(rec.calls == 5 && rec.finalized == 0);

  /* Releasing the breaker finalizes the listeners still attached. */
  CHECK_RC(circuit_breaker_add_listener(b, noop_callback, NULL, NULL, &unused), CIRCUIT_RESULT_OK);
  for (i = 0; i < 3; i++) CHECK_RC(circuit_breaker_reset(b), CIRCUIT_RESULT_OK);
  CHECK(rec.calls == 8);
  circuit_breaker_free(b);
  CHECK(rec.finalized == 1 && second.finalized == 1);

  circuit_breaker_free(other);
  circuit_config_free(cfg);
  circuit_clock_free(clock);
}

/* A listener that releases the last reference to the breaker it is told
 * about (and, optionally, the registry that held it), from inside the
 * transition. The call that made the transition must finish on a live
 * breaker: the release takes effect when that call returns. A second
 * listener, called after the first, reads the event's name. */
typedef struct {
  const circuit_breaker *b;      /* the reference to release, then NULL */
  const circuit_registry *r;     /* released too when not NULL */
  const circuit_breaker *other;  /* called after the release (a nested call) */
  int calls, names_ok, finalized;
} releaser;

static void release_on_event(void *userdata, const circuit_event *e) {
  releaser *x = (releaser *)userdata;
  (void)e;
  x->calls++;
  if (x->r != NULL) {
    circuit_registry_free(x->r);
    x->r = NULL;
  }
  if (x->b != NULL) {
    circuit_breaker_free(x->b);
    x->b = NULL;
  }
  if (x->other != NULL) {
    /* A call nested in the callback returns before the one that ran it:
     * the release must not take effect at its end. */
    uint32_t s = 0;
    circuit_breaker_state(x->other, &s);
  }
}

static void check_name_on_event(void *userdata, const circuit_event *e) {
  releaser *x = (releaser *)userdata;
  if (e->name_len == 6 && memcmp(e->name, "victim", 6) == 0 && e->name[6] == '\0') {
    x->names_ok++;
  }
}

static void finalize_releaser(void *userdata) { ((releaser *)userdata)->finalized++; }

static void test_listener_releasing_its_breaker_is_safe(void) {
  circuit_config *cfg = config_consecutive(1, SEC);
  const circuit_breaker *b = NULL, *other = NULL;
  const circuit_registry *r = NULL;
  releaser x;
  circuit_permit p;
  uint64_t id = 0;

  /* A breaker whose only reference the listener releases. */
  memset(&x, 0, sizeof x);
  CHECK_RC(circuit_breaker_new(cfg, NULL, &other), CIRCUIT_RESULT_OK);
  x.other = other;
  CHECK_RC(circuit_breaker_new_named(cfg, NULL, "victim", 6, &b), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_breaker_add_listener(b, release_on_event, &x, finalize_releaser, &id),
           CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_breaker_add_listener(b, check_name_on_event, &x, NULL, &id), CIRCUIT_RESULT_OK);
  x.b = b;
  CHECK_RC(circuit_breaker_acquire(b, &p, NULL), CIRCUIT_RESULT_OK);
  /* The trip runs both listeners; the first releases the breaker. */
  CHECK_RC(circuit_breaker_record(b, p, CIRCUIT_OUTCOME_FAILURE, MS), CIRCUIT_RESULT_OK);
  CHECK(x.calls == 1 && x.b == NULL);
  CHECK(x.names_ok == 1);
  /* Destroyed once the record returned (LeakSanitizer checks the rest). */
  CHECK(x.finalized == 1);

  /* A registry breaker: the listener releases the handle and the registry,
   * the last two references, while a registry listener is still to run. */
  memset(&x, 0, sizeof x);
  x.other = other;
  CHECK_RC(circuit_registry_new(cfg, 16, 0, NULL, &r), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_registry_get_or_create(r, "victim", 6, &b), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_breaker_add_listener(b, release_on_event, &x, finalize_releaser, &id),
           CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_registry_add_listener(r, check_name_on_event, &x, finalize_releaser, &id),
           CIRCUIT_RESULT_OK);
  x.b = b;
  x.r = r;
  CHECK_RC(circuit_breaker_force(b, CIRCUIT_OVERRIDE_FORCED_OPEN, 0), CIRCUIT_RESULT_OK);
  CHECK(x.calls == 1 && x.b == NULL && x.r == NULL);
  CHECK(x.names_ok == 1);
  CHECK(x.finalized == 2);

  circuit_breaker_free(other);
  circuit_config_free(cfg);
}

/* Idle eviction racing lookups through the ABI: host threads get breakers
 * by name (four names, shared), hold the handle for a while, and check
 * that every lookup of the name meanwhile returns that very breaker; a
 * sweeper sweeps with the shortest idle limit the whole time. A handle is a
 * reference: a held breaker must never be evicted (then a lookup would
 * find nothing, or a new breaker under the same name). */
typedef struct {
  const circuit_registry *r;
  int stop;                 /* set by main, read by the sweeper */
  uint64_t seed;
  uint64_t holds, wrong;    /* per host */
  uint64_t evicted;         /* sweeper */
} evict_race;

static double seconds_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *evict_host(void *arg) {
  evict_race *x = (evict_race *)arg;
  uint64_t s = x->seed;
  double until = seconds_now() + 1.0;
  char name[8];
  while (seconds_now() < until) {
    const circuit_breaker *held = NULL;
    size_t len;
    int checks, i;
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    len = (size_t)snprintf(name, sizeof name, "n%u", (unsigned)(s % 4));
    if (circuit_registry_get_or_create(x->r, name, len, &held) != CIRCUIT_RESULT_OK) {
      x->wrong++;
      continue;
    }
    x->holds++;
    checks = (s >> 8) % 4 == 0 ? 1 + (int)((s >> 16) % 50) : 1;
    for (i = 0; i < checks; i++) {
      const circuit_breaker *again = NULL;
      if (circuit_registry_get(x->r, name, len, &again) != CIRCUIT_RESULT_OK || again != held) {
        x->wrong++;
      }
      circuit_breaker_free(again);
    }
    circuit_breaker_free(held);
  }
  return NULL;
}

static void *evict_sweeper(void *arg) {
  evict_race *x = (evict_race *)arg;
  while (!__atomic_load_n(&x->stop, __ATOMIC_RELAXED)) {
    size_t n = 0;
    if (circuit_registry_sweep_idle(x->r, &n) == CIRCUIT_RESULT_OK) x->evicted += n;
  }
  return NULL;
}

static void test_sweep_never_evicts_a_held_breaker(void) {
  enum { HOSTS = 3 };
  circuit_config *cfg = config_consecutive(5, SEC);
  const circuit_registry *r = NULL;
  evict_race hosts[HOSTS], sweep;
  pthread_t th[HOSTS], sweeper;
  uint64_t holds = 0, wrong = 0;
  int i;

  CHECK_RC(circuit_registry_new(cfg, 64, 1, NULL, &r), CIRCUIT_RESULT_OK);
  memset(&sweep, 0, sizeof sweep);
  sweep.r = r;
  CHECK(pthread_create(&sweeper, NULL, evict_sweeper, &sweep) == 0);
  for (i = 0; i < HOSTS; i++) {
    memset(&hosts[i], 0, sizeof hosts[i]);
    hosts[i].r = r;
    hosts[i].seed = 0x9E3779B97F4A7C15ull * (uint64_t)(i + 1);
    CHECK(pthread_create(&th[i], NULL, evict_host, &hosts[i]) == 0);
  }
  for (i = 0; i < HOSTS; i++) {
    pthread_join(th[i], NULL);
    holds += hosts[i].holds;
    wrong += hosts[i].wrong;
  }
  __atomic_store_n(&sweep.stop, 1, __ATOMIC_RELAXED);
  pthread_join(sweeper, NULL);
  CHECK(wrong == 0);
  if (wrong != 0) {
    fprintf(stderr, "  %llu of %llu holds saw their breaker evicted or replaced\n",
            (unsigned long long)wrong, (unsigned long long)holds);
  }
  CHECK(holds > 1000);
  CHECK(sweep.evicted > 10); /* the race was run, not avoided */
  circuit_registry_free(r);
  circuit_config_free(cfg);
}

/* Events under threads: every transition reaches the registry listener
 * exactly once. */
typedef struct {
  const circuit_registry *r;
  const circuit_clock *clock;
  uint64_t events;
  uint64_t names_ok;
} counter;

static void count_event(void *userdata, const circuit_event *e) {
  counter *c = (counter *)userdata;
  __atomic_fetch_add(&c->events, 1, __ATOMIC_RELAXED);
  if (e->name_len == 3 && e->name[3] == '\0' && strncmp(e->name, "svc", 3) == 0) {
    __atomic_fetch_add(&c->names_ok, 1, __ATOMIC_RELAXED);
  }
}

static void *hammer(void *arg) {
  counter *c = (counter *)arg;
  const circuit_breaker *b = NULL;
  int i;
  if (circuit_registry_get_or_create(c->r, "svc", 3, &b) != CIRCUIT_RESULT_OK) return NULL;
  for (i = 0; i < 20000; i++) {
    circuit_permit p;
    if (circuit_breaker_acquire(b, &p, NULL) == CIRCUIT_RESULT_OK) {
      circuit_breaker_record(b, p, (i % 3) ? CIRCUIT_OUTCOME_FAILURE : CIRCUIT_OUTCOME_SUCCESS, 1);
    }
    if ((i & 31) == 0) circuit_clock_advance(c->clock, MS);
  }
  circuit_breaker_free(b);
  return NULL;
}

static void test_callbacks_under_threads(void) {
  circuit_clock *clock = circuit_clock_manual_new(0);
  circuit_config *cfg = config_consecutive(2, 5 * MS);
  const circuit_registry *r = NULL;
  const circuit_breaker *b = NULL;
  pthread_t t[4];
  counter c;
  circuit_metrics m;
  uint64_t id = 0, total = 0;
  int i;

  CHECK_RC(circuit_registry_new(cfg, 0, 0, clock, &r), CIRCUIT_RESULT_OK);
  memset(&c, 0, sizeof c);
  c.r = r;
  c.clock = clock;
  CHECK_RC(circuit_registry_add_listener(r, count_event, &c, NULL, &id), CIRCUIT_RESULT_OK);
  for (i = 0; i < 4; i++) CHECK(pthread_create(&t[i], NULL, hammer, &c) == 0);
  for (i = 0; i < 4; i++) CHECK(pthread_join(t[i], NULL) == 0);
  CHECK_RC(circuit_registry_get(r, "svc", 3, &b), CIRCUIT_RESULT_OK);
  memset(&m, 0, sizeof m);
  m.struct_size = sizeof m;
  CHECK_RC(circuit_breaker_metrics(b, &m), CIRCUIT_RESULT_OK);
  for (i = 0; i < CIRCUIT_STATE_COUNT; i++) total += m.transitions_to[i];
  CHECK(total > 0);
  CHECK(c.events == total);
  CHECK(c.names_ok == total);
  printf("callbacks under threads: %llu transitions, %llu events\n", (unsigned long long)total,
         (unsigned long long)c.events);
  CHECK_RC(circuit_registry_remove_listener(r, id), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_registry_remove_listener(r, id), CIRCUIT_RESULT_NOT_FOUND);
  circuit_breaker_free(b);
  circuit_registry_free(r);
  circuit_config_free(cfg);
  circuit_clock_free(clock);
}

/* ---------- event queues ------------------------------------------------------ */

static void test_event_queue(void) {
  circuit_clock *clock = circuit_clock_manual_new(7 * SEC);
  circuit_config *cfg = config_consecutive(1, SEC);
  const circuit_breaker *b = NULL;
  const circuit_registry *r = NULL;
  const circuit_breaker *ra = NULL, *rb = NULL;
  circuit_event_queue *q = NULL, *rq = NULL;
  circuit_event e;
  char name[CIRCUIT_NAME_MAX_LEN + 1];
  char tiny[2];
  size_t len = 0, n = 0;
  uint64_t dropped = 99;
  int seen_a = 0, seen_b = 0;

  CHECK_RC(circuit_breaker_new_named(cfg, clock, "db", 2, &b), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_breaker_event_queue_new(b, 0, &q), CIRCUIT_RESULT_INVALID_ARGUMENT);
  CHECK_ERR_MENTIONS("capacity");
  CHECK_RC(circuit_breaker_event_queue_new(b, (size_t)1 << 30, &q), CIRCUIT_RESULT_INVALID_ARGUMENT);
  CHECK(q == NULL);
  CHECK_RC(circuit_breaker_event_queue_new(b, 2, &q), CIRCUIT_RESULT_OK);

  memset(&e, 0, sizeof e);
  e.struct_size = sizeof e;
  CHECK_RC(circuit_event_queue_poll(q, &e, name, sizeof name, &len), CIRCUIT_RESULT_EMPTY);

  /* Three transitions into a queue of two: one dropped. */
  call(b, CIRCUIT_OUTCOME_FAILURE, 1);                            /* closed -> open */
  CHECK_RC(circuit_breaker_force(b, CIRCUIT_OVERRIDE_DISABLED, 0), CIRCUIT_RESULT_OK); /* -> disabled */
  CHECK_RC(circuit_breaker_reset(b), CIRCUIT_RESULT_OK);           /* -> closed, dropped */
  CHECK_RC(circuit_event_queue_len(q, &n), CIRCUIT_RESULT_OK);
  CHECK(n == 2);
  CHECK_RC(circuit_event_queue_dropped(q, &dropped), CIRCUIT_RESULT_OK);
  CHECK(dropped == 1);

  /* A bad struct size loses nothing. */
  e.struct_size = 12;
  CHECK_RC(circuit_event_queue_poll(q, &e, name, sizeof name, &len), CIRCUIT_RESULT_INVALID_ARGUMENT);
  CHECK_ERR_MENTIONS("struct_size");
  e.struct_size = 0;
  CHECK_RC(circuit_event_queue_poll(q, &e, name, sizeof name, &len), CIRCUIT_RESULT_INVALID_ARGUMENT);
  CHECK_RC(circuit_event_queue_len(q, &n), CIRCUIT_RESULT_OK);
  CHECK(n == 2);

  /* Required-length protocol: the event waits until its name fits. */
  e.struct_size = sizeof e;
  CHECK_RC(circuit_event_queue_poll(q, &e, NULL, 0, &len), CIRCUIT_RESULT_BUFFER_TOO_SMALL);
  CHECK(len == 2);
  memset(tiny, 'x', sizeof tiny);
  CHECK_RC(circuit_event_queue_poll(q, &e, tiny, sizeof tiny, &len), CIRCUIT_RESULT_BUFFER_TOO_SMALL);
  CHECK(tiny[0] == 'x' && tiny[1] == 'x' && len == 2);
  CHECK_RC(circuit_event_queue_len(q, &n), CIRCUIT_RESULT_OK);
  CHECK(n == 2);
  CHECK_RC(circuit_event_queue_poll(q, &e, name, 3, &len), CIRCUIT_RESULT_OK);
  CHECK(len == 2 && strcmp(name, "db") == 0 && e.name == name && e.name_len == 2);
  CHECK(e.struct_size == sizeof e && e.from == CIRCUIT_STATE_CLOSED && e.to == CIRCUIT_STATE_OPEN);
  CHECK(e.reason == CIRCUIT_REASON_CONSECUTIVE_FAILURES && e.at_ns == 7 * SEC);
  CHECK(e.open_for_ns == SEC);

  /* An older, smaller struct gets its prefix only. */
  memset(&e, 0xab, sizeof e);
  e.struct_size = 16;
  CHECK_RC(circuit_event_queue_poll(q, &e, name, sizeof name, &len), CIRCUIT_RESULT_OK);
  CHECK(e.struct_size == 16 && e.from == CIRCUIT_STATE_OPEN && e.to == CIRCUIT_STATE_DISABLED);
  CHECK(e.reason == CIRCUIT_REASON_OVERRIDE_SET && e.at_ns == 0xababababababababull);
  CHECK_RC(circuit_event_queue_poll(q, &e, name, sizeof name, &len), CIRCUIT_RESULT_EMPTY);

  /* The queue does not keep the breaker alive, and outlives it. */
  circuit_breaker_free(b);
  CHECK_RC(circuit_event_queue_poll(q, &e, name, sizeof name, &len), CIRCUIT_RESULT_EMPTY);
  circuit_event_queue_free(q);

  /* A registry queue hears every breaker, by name. */
  CHECK_RC(circuit_registry_new(cfg, 0, 0, clock, &r), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_registry_event_queue_new(r, 16, &rq), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_registry_get_or_create(r, "alpha", 5, &ra), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_registry_get_or_create(r, "beta", 4, &rb), CIRCUIT_RESULT_OK);
  call(ra, CIRCUIT_OUTCOME_FAILURE, 1);
  call(rb, CIRCUIT_OUTCOME_TIMEOUT, 1);
  e.struct_size = sizeof e;
  while (circuit_event_queue_poll(rq, &e, name, sizeof name, &len) == CIRCUIT_RESULT_OK) {
    if (strcmp(name, "alpha") == 0) seen_a++;
    if (strcmp(name, "beta") == 0) seen_b++;
  }
  CHECK(seen_a == 1 && seen_b == 1);
  /* Freeing the registry first is fine: the queue detaches lazily. */
  circuit_registry_free(r);
  circuit_event_queue_free(rq);
  circuit_breaker_free(ra);
  circuit_breaker_free(rb);
  circuit_config_free(cfg);
  circuit_clock_free(clock);
}

/* ---------- registries -------------------------------------------------------- */

static void test_registry(void) {
  circuit_clock *clock = circuit_clock_manual_new(0);
  circuit_config *strict = config_consecutive(1, SEC);
  const circuit_registry *r = NULL;
  const circuit_breaker *a = NULL, *a2 = NULL, *s = NULL, *x = NULL, *borrowed = NULL;
  circuit_registry_iter *it = NULL;
  const char *names[8];
  char long_name[CIRCUIT_NAME_MAX_LEN + 2];
  char buf[64];
  const char *name = NULL;
  size_t len = 0, n = 0, removed = 99, total_removed = 0;
  int count = 0, i;

  CHECK_RC(circuit_registry_new(NULL, 4, 2, clock, &r), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_registry_get_or_create(r, "api", 3, &a), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_registry_get_or_create(r, "api", 3, &a2), CIRCUIT_RESULT_OK);
  CHECK(a == a2); /* one breaker per name */
  circuit_breaker_free(a2);
  CHECK_RC(circuit_breaker_name(a, buf, sizeof buf, &len), CIRCUIT_RESULT_OK);
  CHECK(len == 3 && strcmp(buf, "api") == 0);
  CHECK_RC(circuit_breaker_name(a, NULL, 0, &len), CIRCUIT_RESULT_BUFFER_TOO_SMALL);
  CHECK(len == 3);

  CHECK_RC(circuit_registry_get(r, "nope", 4, &x), CIRCUIT_RESULT_NOT_FOUND);
  CHECK_ERR_MENTIONS("nope");
  CHECK(x == NULL);

  /* Per-name config. */
  CHECK_RC(circuit_registry_set_config(r, "strict", 6, strict), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_registry_get_or_create(r, "strict", 6, &s), CIRCUIT_RESULT_OK);
  call(s, CIRCUIT_OUTCOME_FAILURE, 1);
  CHECK(state_of(s) == CIRCUIT_STATE_OPEN);
  call(a, CIRCUIT_OUTCOME_FAILURE, 1);
  CHECK(state_of(a) == CIRCUIT_STATE_CLOSED); /* defaults: 5 in a row */

  /* Names: UTF-8, 1 to CIRCUIT_NAME_MAX_LEN bytes. */
  CHECK_RC(circuit_registry_get_or_create(r, "", 0, &x), CIRCUIT_RESULT_INVALID_ARGUMENT);
  CHECK_ERR_MENTIONS("empty");
  CHECK_RC(circuit_registry_get_or_create(r, NULL, 0, &x), CIRCUIT_RESULT_INVALID_ARGUMENT);
  CHECK_RC(circuit_registry_get_or_create(r, "caf\xc3", 4, &x), CIRCUIT_RESULT_INVALID_UTF8);
  CHECK_RC(circuit_registry_get(r, "\xff", 1, &x), CIRCUIT_RESULT_INVALID_UTF8);
  CHECK_RC(circuit_registry_remove(r, "\xed\xa0\x80", 3), CIRCUIT_RESULT_INVALID_UTF8);
  CHECK_RC(circuit_registry_set_config(r, "\xc0\x80", 2, strict), CIRCUIT_RESULT_INVALID_UTF8);
  CHECK_RC(circuit_breaker_new_named(strict, NULL, "\xfe", 1, &x), CIRCUIT_RESULT_INVALID_UTF8);
  memset(long_name, 'n', sizeof long_name);
  CHECK_RC(circuit_registry_get_or_create(r, long_name, CIRCUIT_NAME_MAX_LEN + 1, &x),
           CIRCUIT_RESULT_INVALID_ARGUMENT);
  CHECK_RC(circuit_breaker_new_named(strict, NULL, long_name, CIRCUIT_NAME_MAX_LEN + 1, &x),
           CIRCUIT_RESULT_INVALID_ARGUMENT);
  CHECK(x == NULL);
  CHECK_RC(circuit_registry_get_or_create(r, "caf\xc3\xa9", 5, &x), CIRCUIT_RESULT_OK); /* café */
  circuit_breaker_free(x);
  x = NULL;

  /* The cap: 4 breakers. */
  CHECK_RC(circuit_registry_get_or_create(r, long_name, CIRCUIT_NAME_MAX_LEN, &x), CIRCUIT_RESULT_OK);
  circuit_breaker_free(x);
  x = NULL;
  CHECK_RC(circuit_registry_len(r, &n), CIRCUIT_RESULT_OK);
  CHECK(n == 4);
  CHECK_RC(circuit_registry_get_or_create(r, "one-more", 8, &x), CIRCUIT_RESULT_LIMIT_EXCEEDED);
  CHECK_ERR_MENTIONS("4");
  CHECK(x == NULL);

  /* Iteration: a sorted snapshot with borrowed names and breakers. */
  CHECK_RC(circuit_registry_iter_new(r, &it), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_registry_remove(r, "api", 3), CIRCUIT_RESULT_OK); /* after the snapshot */
  while (circuit_registry_iter_next(it, &name, &len, &borrowed) == CIRCUIT_RESULT_OK) {
    if (count < 8) names[count] = name;
    CHECK(strlen(name) == len && borrowed != NULL);
    count++;
  }
  CHECK(count == 4);
  CHECK(strcmp(names[0], "api") == 0 && strcmp(names[1], "caf\xc3\xa9") == 0);
  CHECK(names[2][0] == 'n' && strcmp(names[3], "strict") == 0);
  CHECK_RC(circuit_registry_iter_next(it, NULL, NULL, NULL), CIRCUIT_RESULT_EMPTY);
  circuit_registry_iter_free(it);

  CHECK_RC(circuit_registry_remove(r, "api", 3), CIRCUIT_RESULT_NOT_FOUND);
  /* The removed breaker still works for its holder. */
  call(a, CIRCUIT_OUTCOME_SUCCESS, 1);
  CHECK_RC(circuit_registry_get_or_create(r, "api", 3, &a2), CIRCUIT_RESULT_OK);
  CHECK(a2 != a); /* a new one */
  circuit_breaker_free(a2);

  /* Idle eviction (after 2 sweeps, counted from the first sweep that
   * saw the breaker): idle, CLOSED and referenced by the registry alone. */
  for (i = 0; i < 3; i++) {
    CHECK_RC(circuit_registry_sweep_idle(r, &removed), CIRCUIT_RESULT_OK);
    total_removed += removed;
  }
  CHECK(total_removed >= 1);
  CHECK_RC(circuit_registry_get(r, "api", 3, &x), CIRCUIT_RESULT_NOT_FOUND);
  /* "strict" is OPEN and still referenced: kept. */
  CHECK_RC(circuit_registry_get(r, "strict", 6, &x), CIRCUIT_RESULT_OK);
  circuit_breaker_free(x);

  /* Breakers outlive their registry. */
  circuit_registry_free(r);
  CHECK(state_of(s) == CIRCUIT_STATE_OPEN);
  call(a, CIRCUIT_OUTCOME_SUCCESS, 1);
  circuit_breaker_free(s);
  circuit_breaker_free(a);
  circuit_config_free(strict);
  circuit_clock_free(clock);
}

/* ---------- Prometheus ---------------------------------------------------------- */

static void test_prometheus(void) {
  circuit_clock *clock = circuit_clock_manual_new(0);
  const circuit_registry *r = NULL;
  const circuit_breaker *api = NULL, *odd = NULL;
  size_t len = 0, len2 = 0, i;
  char *text;
  char small[16];

  CHECK_RC(circuit_registry_new(NULL, 0, 0, clock, &r), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_registry_get_or_create(r, "api", 3, &api), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_registry_get_or_create(r, "a\"b\\c\nd", 7, &odd), CIRCUIT_RESULT_OK);
  for (i = 0; i < 9; i++) call(api, CIRCUIT_OUTCOME_SUCCESS, MS);

  /* Ask for the length. */
  CHECK_RC(circuit_registry_render_prometheus(r, NULL, 0, &len), CIRCUIT_RESULT_BUFFER_TOO_SMALL);
  CHECK(len > 500);
  /* More calls meanwhile (9 -> 10 successes: one more digit); the text
   * announced is the one delivered. */
  call(api, CIRCUIT_OUTCOME_SUCCESS, MS);
  text = (char *)malloc(len + 1);
  memset(small, 'x', sizeof small);
  CHECK_RC(circuit_registry_render_prometheus(r, small, sizeof small, &len2), CIRCUIT_RESULT_BUFFER_TOO_SMALL);
  CHECK(len2 == len && small[0] == 'x');
  CHECK_RC(circuit_registry_render_prometheus(r, text, len + 1, &len2), CIRCUIT_RESULT_OK);
  CHECK(len2 == len && strlen(text) == len);
  CHECK(strstr(text, "circuit_calls_total{name=\"api\",outcome=\"success\"} 9\n") != NULL);
  CHECK(strstr(text, "# TYPE circuit_calls_total counter\n") != NULL);
  CHECK(strstr(text, "# TYPE circuit_state gauge\n") != NULL);
  CHECK(strstr(text, "circuit_state{name=\"api\",state=\"closed\"} 1\n") != NULL);
  CHECK(strstr(text, "name=\"a\\\"b\\\\c\\nd\"") != NULL); /* escaped label value */
  free(text);

  /* A fresh render sees the tenth call. */
  CHECK_RC(circuit_registry_render_prometheus(r, NULL, 0, &len), CIRCUIT_RESULT_BUFFER_TOO_SMALL);
  text = (char *)malloc(len + 1);
  CHECK_RC(circuit_registry_render_prometheus(r, text, len + 1, &len2), CIRCUIT_RESULT_OK);
  CHECK(strstr(text, "circuit_calls_total{name=\"api\",outcome=\"success\"} 10\n") != NULL);
  free(text);

  /* A generous buffer works in one call. */
  text = (char *)malloc(64 * 1024);
  CHECK_RC(circuit_registry_render_prometheus(r, text, 64 * 1024, &len2), CIRCUIT_RESULT_OK);
  CHECK(strlen(text) == len2);
  free(text);

  circuit_breaker_free(api);
  circuit_breaker_free(odd);
  circuit_registry_free(r);
  circuit_clock_free(clock);
}

/* ---------- retry -------------------------------------------------------------- */

static void test_retry(void) {
  circuit_clock *clock = circuit_clock_manual_new(0);
  circuit_retry_policy *p = NULL, *capped = NULL, *jittered = NULL;
  circuit_retry_budget *budget = NULL;
  uint64_t d = 0, d2 = 0, balance = 0, calls = 0, retries = 0;
  uint32_t attempt;
  int i, differ = 0;

  /* Unknown kinds and refused values. */
  CHECK_RC(circuit_retry_policy_new(3, MS, 2.0, CIRCUIT_JITTER_NONE, 0, SEC, 3, &p), CIRCUIT_RESULT_INVALID_ARGUMENT);
  CHECK_ERR_MENTIONS("backoff");
  CHECK_RC(circuit_retry_policy_new(CIRCUIT_BACKOFF_NONE, 0, 1, 5, 0, SEC, 3, &p), CIRCUIT_RESULT_INVALID_ARGUMENT);
  CHECK_RC(circuit_retry_policy_new(CIRCUIT_BACKOFF_NONE, 0, 1, UINT32_MAX, 0, SEC, 3, &p), CIRCUIT_RESULT_INVALID_ARGUMENT);
  CHECK_ERR_MENTIONS("jitter");
  CHECK_RC(circuit_retry_policy_new(CIRCUIT_BACKOFF_NONE, 0, 1, 0, 0, SEC, 0, &p), CIRCUIT_RESULT_INVALID_CONFIG);
  CHECK_ERR_MENTIONS("max_attempts");
  CHECK_RC(circuit_retry_policy_new(CIRCUIT_BACKOFF_NONE, 0, 1, 0, 0, 0, 3, &p), CIRCUIT_RESULT_INVALID_CONFIG);
  CHECK_ERR_MENTIONS("max_delay");
  CHECK_RC(circuit_retry_policy_new(CIRCUIT_BACKOFF_EXPONENTIAL, MS, 0.5, 0, 0, SEC, 3, &p), CIRCUIT_RESULT_INVALID_CONFIG);
  CHECK_RC(circuit_retry_policy_new(CIRCUIT_BACKOFF_EXPONENTIAL, MS, (double)NAN, 0, 0, SEC, 3, &p), CIRCUIT_RESULT_INVALID_CONFIG);
  CHECK_RC(circuit_retry_policy_new(CIRCUIT_BACKOFF_NONE, 0, 1, CIRCUIT_JITTER_PLUS_MINUS, 2.0, SEC, 3, &p),
           CIRCUIT_RESULT_INVALID_CONFIG);
  CHECK(p == NULL);

  /* Exponential 100 ms doubling, no jitter, 5 attempts. */
  CHECK_RC(circuit_retry_policy_new(CIRCUIT_BACKOFF_EXPONENTIAL, 100 * MS, 2.0, CIRCUIT_JITTER_NONE, 0,
                                    SEC, 5, &p),
           CIRCUIT_RESULT_OK);
  for (attempt = 1; attempt <= 4; attempt++) {
    CHECK_RC(circuit_retry_policy_delay(p, attempt, d, 42, &d), CIRCUIT_RESULT_OK);
    CHECK(d == (100 * MS << (attempt - 1)));
  }
  d2 = 77;
  CHECK_RC(circuit_retry_policy_delay(p, 5, d, 42, &d2), CIRCUIT_RESULT_RETRY_EXHAUSTED);
  CHECK(d2 == 77);
  /* The cap. */
  CHECK_RC(circuit_retry_policy_new(CIRCUIT_BACKOFF_EXPONENTIAL, 100 * MS, 2.0, CIRCUIT_JITTER_NONE, 0,
                                    SEC, 10, &capped),
           CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_retry_policy_delay(capped, 6, 0, 0, &d), CIRCUIT_RESULT_OK);
  CHECK(d == SEC);
  /* Full jitter: within [0, d], the same for the same seed. */
  CHECK_RC(circuit_retry_policy_new(CIRCUIT_BACKOFF_CONSTANT, 100 * MS, 1.0, CIRCUIT_JITTER_FULL, 0, SEC,
                                    10, &jittered),
           CIRCUIT_RESULT_OK);
  for (i = 0; i < 50; i++) {
    uint64_t seed = circuit_random_seed();
    CHECK_RC(circuit_retry_policy_delay(jittered, 1, 0, seed, &d), CIRCUIT_RESULT_OK);
    CHECK_RC(circuit_retry_policy_delay(jittered, 1, 0, seed, &d2), CIRCUIT_RESULT_OK);
    CHECK(d <= 100 * MS && d == d2);
    CHECK_RC(circuit_retry_policy_delay(jittered, 2, 0, seed, &d2), CIRCUIT_RESULT_OK);
    if (d2 != d) differ++;
  }
  CHECK(differ > 40);
  CHECK(circuit_random_seed() != circuit_random_seed());

  /* Budget: 50 % of calls, no reserve. */
  CHECK_RC(circuit_retry_budget_new(-1, 0, 10 * SEC, 10, clock, &budget), CIRCUIT_RESULT_INVALID_CONFIG);
  CHECK_ERR_MENTIONS("ratio");
  CHECK_RC(circuit_retry_budget_new(0.5, 0, 10 * SEC, 0, clock, &budget), CIRCUIT_RESULT_INVALID_CONFIG);
  CHECK_ERR_MENTIONS("buckets");
  CHECK_RC(circuit_retry_budget_new(0.5, 0, 10 * SEC, 10, clock, &budget), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_retry_budget_try_retry(budget), CIRCUIT_RESULT_BUDGET_EXHAUSTED);
  for (i = 0; i < 4; i++) CHECK_RC(circuit_retry_budget_record_call(budget), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_retry_budget_balance(budget, &balance, &calls, &retries), CIRCUIT_RESULT_OK);
  CHECK(balance == 2 && calls == 4 && retries == 0);
  CHECK_RC(circuit_retry_budget_try_retry(budget), CIRCUIT_RESULT_OK);
  /* circuit_retry_next: attempts first (the budget is not touched)... */
  CHECK_RC(circuit_retry_next(p, budget, 5, 0, 1, &d), CIRCUIT_RESULT_RETRY_EXHAUSTED);
  CHECK_RC(circuit_retry_budget_balance(budget, &balance, NULL, &retries), CIRCUIT_RESULT_OK);
  CHECK(balance == 1 && retries == 1);
  /* ...then the budget, then the delay. */
  CHECK_RC(circuit_retry_next(p, budget, 1, 0, 1, &d), CIRCUIT_RESULT_OK);
  CHECK(d == 100 * MS);
  d = 5;
  CHECK_RC(circuit_retry_next(p, budget, 2, 0, 1, &d), CIRCUIT_RESULT_BUDGET_EXHAUSTED);
  CHECK(d == 5);
  CHECK_RC(circuit_retry_next(p, NULL, 2, 0, 1, &d), CIRCUIT_RESULT_OK); /* no budget */
  CHECK(d == 200 * MS);
  /* The window slides: after 10 s the old calls and retries are gone. */
  CHECK_RC(circuit_clock_advance(clock, 11 * SEC), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_retry_budget_balance(budget, &balance, &calls, &retries), CIRCUIT_RESULT_OK);
  CHECK(balance == 0 && calls == 0 && retries == 0);

  circuit_retry_budget_free(budget);
  circuit_retry_policy_free(jittered);
  circuit_retry_policy_free(capped);
  circuit_retry_policy_free(p);
  circuit_clock_free(clock);
}

/* The retry decision comes from the library: a rejected attempt is never
 * retried and leaves the budget alone; the delays of a seed are the policy's. */
static void test_retry_decide(void) {
  circuit_clock *clock = circuit_clock_manual_new(0);
  circuit_retry_policy *p = NULL;
  circuit_retry_budget *budget = NULL;
  uint64_t d = 0, want = 0, prev = 0, balance = 0, retries = 0;
  uint32_t stop = 99, attempt;
  int i;

  CHECK_RC(circuit_retry_policy_new(CIRCUIT_BACKOFF_EXPONENTIAL, 10 * MS, 2.0, CIRCUIT_JITTER_FULL, 0, SEC, 5, &p),
           CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_retry_budget_new(1.0, 0, 10 * SEC, 10, clock, &budget), CIRCUIT_RESULT_OK);
  for (i = 0; i < 4; i++) CHECK_RC(circuit_retry_budget_record_call(budget), CIRCUIT_RESULT_OK);
  {
    const uint32_t outcomes[3] = {CIRCUIT_RETRY_OUTCOME_REJECTED, CIRCUIT_RETRY_OUTCOME_NOT_RETRYABLE,
                                  CIRCUIT_RETRY_OUTCOME_SUCCESS};
    const uint32_t stops[3] = {CIRCUIT_RETRY_STOP_REJECTED, CIRCUIT_RETRY_STOP_NOT_RETRYABLE,
                               CIRCUIT_RETRY_STOP_SUCCESS};
    for (i = 0; i < 3; i++) {
      d = 7;
      CHECK_RC(circuit_retry_decide(p, budget, 1, outcomes[i], 0, 42, &d, &stop), CIRCUIT_RESULT_OK);
      CHECK(stop == stops[i] && d == 0);
    }
  }
  CHECK_RC(circuit_retry_budget_balance(budget, &balance, NULL, &retries), CIRCUIT_RESULT_OK);
  CHECK(balance == 4 && retries == 0); /* nothing withdrawn */
  /* Unknown outcome: refused, nothing written. */
  stop = 99;
  CHECK_RC(circuit_retry_decide(p, budget, 1, 4, 0, 42, &d, &stop), CIRCUIT_RESULT_INVALID_ARGUMENT);
  CHECK(stop == 99);
  CHECK_RC(circuit_retry_decide(p, budget, 1, CIRCUIT_RETRY_OUTCOME_RETRYABLE, 0, 42, NULL, &stop),
           CIRCUIT_RESULT_NULL_ARGUMENT);
  /* Retryable: the delays of seed 42 are the policy's; one withdrawal each. */
  for (attempt = 1; attempt <= 4; attempt++) {
    CHECK_RC(circuit_retry_policy_delay(p, attempt, prev, 42, &want), CIRCUIT_RESULT_OK);
    CHECK_RC(circuit_retry_decide(p, budget, attempt, CIRCUIT_RETRY_OUTCOME_RETRYABLE, prev, 42, &d, &stop),
             CIRCUIT_RESULT_OK);
    CHECK(stop == CIRCUIT_RETRY_STOP_RETRY && d == want);
    prev = d;
  }
  CHECK_RC(circuit_retry_decide(p, budget, 5, CIRCUIT_RETRY_OUTCOME_RETRYABLE, prev, 42, &d, &stop),
           CIRCUIT_RESULT_OK);
  CHECK(stop == CIRCUIT_RETRY_STOP_ATTEMPTS_EXHAUSTED);
  CHECK_RC(circuit_retry_decide(p, budget, 1, CIRCUIT_RETRY_OUTCOME_RETRYABLE, 0, 42, &d, &stop),
           CIRCUIT_RESULT_OK);
  CHECK(stop == CIRCUIT_RETRY_STOP_BUDGET_EXHAUSTED); /* 4 calls paid for 4 retries */

  circuit_retry_budget_free(budget);
  circuit_retry_policy_free(p);
  circuit_clock_free(clock);
}

/* ---------- latency and adaptive timeouts ---------------------------------------- */

static void test_latency(void) {
  circuit_clock *clock = circuit_clock_manual_new(0);
  circuit_config_builder *cb = circuit_config_builder_new();
  circuit_config *cfg = NULL, *plain = NULL;
  const circuit_breaker *b = NULL, *nohist = NULL;
  circuit_adaptive_timeout *rule = NULL, *patient = NULL;
  circuit_latency lat;
  uint64_t ns = 0;
  int i;

  CHECK_RC(circuit_config_builder_set_latency_histogram(cb, 1), CIRCUIT_RESULT_INVALID_CONFIG);
  CHECK_ERR_MENTIONS("latency_histogram");
  CHECK_RC(circuit_config_builder_build(cb, &plain), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_config_builder_set_latency_histogram(cb, 60 * SEC), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_config_builder_build(cb, &cfg), CIRCUIT_RESULT_OK);
  circuit_config_builder_free(cb);
  CHECK_RC(circuit_breaker_new(cfg, clock, &b), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_breaker_new(plain, clock, &nohist), CIRCUIT_RESULT_OK);

  memset(&lat, 0, sizeof lat);
  lat.struct_size = sizeof lat;
  CHECK_RC(circuit_breaker_latency(nohist, &lat), CIRCUIT_RESULT_NOT_FOUND);
  CHECK_ERR_MENTIONS("histogram");
  CHECK_RC(circuit_breaker_latency_percentile(b, 50, &ns), CIRCUIT_RESULT_EMPTY);
  CHECK_RC(circuit_breaker_latency(b, &lat), CIRCUIT_RESULT_OK);
  CHECK(lat.count == 0 && lat.p99_ns == 0);

  for (i = 0; i < 100; i++) call(b, CIRCUIT_OUTCOME_SUCCESS, 50 * MS);
  CHECK_RC(circuit_breaker_latency(b, &lat), CIRCUIT_RESULT_OK);
  CHECK(lat.struct_size == sizeof lat && lat.count == 100 && lat.sum_ns == 5000 * MS);
  CHECK(lat.min_ns == 50 * MS && lat.max_ns == 50 * MS && lat.p50_ns == 50 * MS && lat.p999_ns == 50 * MS);
  CHECK_RC(circuit_breaker_latency_percentile(b, 95.0, &ns), CIRCUIT_RESULT_OK);
  CHECK(ns == 50 * MS);
  CHECK_RC(circuit_breaker_latency_percentile(b, 100.5, &ns), CIRCUIT_RESULT_INVALID_ARGUMENT);
  CHECK_RC(circuit_breaker_latency_percentile(b, -1, &ns), CIRCUIT_RESULT_INVALID_ARGUMENT);
  CHECK_RC(circuit_breaker_latency_percentile(b, (double)NAN, &ns), CIRCUIT_RESULT_INVALID_ARGUMENT);
  CHECK_ERR_MENTIONS("percentile");

  /* Wrong sizes: nothing written; a prefix: only it. */
  memset(&lat, 0xab, sizeof lat);
  lat.struct_size = 20;
  CHECK_RC(circuit_breaker_latency(b, &lat), CIRCUIT_RESULT_INVALID_ARGUMENT);
  CHECK(lat.count == 0xababababababababull);
  lat.struct_size = 16;
  CHECK_RC(circuit_breaker_latency(b, &lat), CIRCUIT_RESULT_OK);
  CHECK(lat.struct_size == 16 && lat.count == 100 && lat.sum_ns == 0xababababababababull);

  /* Adaptive timeouts: defaults (p95 x 1.2 once 100 samples) -> 60 ms. */
  CHECK_RC(circuit_breaker_recommended_timeout(b, NULL, &ns), CIRCUIT_RESULT_OK);
  CHECK(ns == 60 * MS);
  CHECK_RC(circuit_breaker_recommended_timeout(nohist, NULL, &ns), CIRCUIT_RESULT_OK);
  CHECK(ns == SEC); /* the base */
  CHECK_RC(circuit_adaptive_timeout_new(99, 2.0, MS, 10 * SEC, 500 * MS, 10, &rule), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_breaker_recommended_timeout(b, rule, &ns), CIRCUIT_RESULT_OK);
  CHECK(ns == 100 * MS);
  CHECK_RC(circuit_adaptive_timeout_new(99, 2.0, MS, 10 * SEC, 500 * MS, 1000, &patient), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_breaker_recommended_timeout(b, patient, &ns), CIRCUIT_RESULT_OK);
  CHECK(ns == 500 * MS); /* too few samples: the base */
  circuit_adaptive_timeout_free(patient);
  patient = NULL;
  CHECK_RC(circuit_adaptive_timeout_new(99, 2.0, SEC, MS, MS, 10, &patient), CIRCUIT_RESULT_INVALID_CONFIG);
  CHECK_ERR_MENTIONS("floor");
  CHECK_RC(circuit_adaptive_timeout_new(101, 2.0, MS, SEC, MS, 10, &patient), CIRCUIT_RESULT_INVALID_CONFIG);
  CHECK_RC(circuit_adaptive_timeout_new(50, 0, MS, SEC, MS, 10, &patient), CIRCUIT_RESULT_INVALID_CONFIG);
  CHECK_ERR_MENTIONS("multiplier");
  CHECK(patient == NULL);

  circuit_adaptive_timeout_free(rule);
  circuit_breaker_free(b);
  circuit_breaker_free(nohist);
  circuit_config_free(cfg);
  circuit_config_free(plain);
  circuit_clock_free(clock);
}

/* ---------- group guard ------------------------------------------------------- */

/* Three breakers in a group of which one may be OPEN: the second trip is
 * refused (a shadow trip event, CLOSED to CLOSED, counted in the group's
 * stats and in the Prometheus text); bad arguments change nothing. */
static void test_group_guard(void) {
  circuit_clock *clock = circuit_clock_manual_new(0);
  circuit_config *strict = config_consecutive(1, SEC);
  const circuit_registry *r = NULL;
  const circuit_breaker *a = NULL, *b = NULL;
  circuit_event_queue *q = NULL;
  circuit_group_stats gs;
  circuit_event ev;
  char buf[64], text[8192];
  size_t len = 0;
  int shadow = 0;

  CHECK_RC(circuit_registry_new(strict, 0, 0, clock, &r), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_registry_event_queue_new(r, 16, &q), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_registry_join_group(r, "a", 1, "pool", 4), CIRCUIT_RESULT_NOT_FOUND);
  CHECK_ERR_MENTIONS("group");
  CHECK_RC(circuit_registry_set_group_fraction(r, "pool", 4, 1.5), CIRCUIT_RESULT_INVALID_ARGUMENT);
  CHECK_RC(circuit_registry_set_group_fraction(r, "pool", 4, NAN), CIRCUIT_RESULT_INVALID_ARGUMENT);
  CHECK_RC(circuit_registry_set_group_count(r, "", 0, 1), CIRCUIT_RESULT_INVALID_ARGUMENT);
  CHECK_RC(circuit_registry_set_group_count(r, "caf\xc3", 4, 1), CIRCUIT_RESULT_INVALID_UTF8);
  CHECK_RC(circuit_registry_set_group_count(NULL, "pool", 4, 1), CIRCUIT_RESULT_NULL_ARGUMENT);
  memset(&gs, 0, sizeof gs);
  gs.struct_size = sizeof gs;
  CHECK_RC(circuit_registry_group_stats(r, "pool", 4, &gs), CIRCUIT_RESULT_NOT_FOUND);

  CHECK_RC(circuit_registry_set_group_count(r, "pool", 4, 1), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_registry_join_group(r, "a", 1, "pool", 4), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_registry_join_group(r, "b", 1, "pool", 4), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_registry_join_group(r, "b", 1, NULL, 4), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK_RC(circuit_registry_get_or_create(r, "a", 1, &a), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_registry_get_or_create(r, "b", 1, &b), CIRCUIT_RESULT_OK);

  call(a, CIRCUIT_OUTCOME_FAILURE, 1);
  CHECK(state_of(a) == CIRCUIT_STATE_OPEN);
  call(b, CIRCUIT_OUTCOME_FAILURE, 1);
  CHECK(state_of(b) == CIRCUIT_STATE_CLOSED); /* refused: b keeps serving */
  call(b, CIRCUIT_OUTCOME_SUCCESS, 1);

  memset(&ev, 0, sizeof ev);
  ev.struct_size = sizeof ev;
  while (circuit_event_queue_poll(q, &ev, buf, sizeof buf, &len) == CIRCUIT_RESULT_OK) {
    if (ev.reason == CIRCUIT_REASON_SHADOW_TRIP) {
      shadow++;
      CHECK(strcmp(buf, "b") == 0);
      CHECK(ev.from == CIRCUIT_STATE_CLOSED && ev.to == CIRCUIT_STATE_CLOSED);
    }
  }
  CHECK(shadow == 1);

  memset(&gs, 0, sizeof gs);
  gs.struct_size = sizeof gs;
  CHECK_RC(circuit_registry_group_stats(r, "pool", 4, &gs), CIRCUIT_RESULT_OK);
  CHECK(gs.struct_size == sizeof gs);
  CHECK(gs.limit_kind == CIRCUIT_GROUP_LIMIT_COUNT && gs.limit == 1.0);
  CHECK(gs.members == 2 && gs.open == 1 && gs.max_open == 1 && gs.refused_trips == 1);
  /* A struct from an older header: only its bytes are filled. */
  memset(&gs, 0xAB, sizeof gs);
  gs.struct_size = 16;
  CHECK_RC(circuit_registry_group_stats(r, "pool", 4, &gs), CIRCUIT_RESULT_OK);
  CHECK(gs.struct_size == 16 && gs.limit == 1.0 && gs.members == 0xABABABABABABABABull);
  gs.struct_size = 4;
  CHECK_RC(circuit_registry_group_stats(r, "pool", 4, &gs), CIRCUIT_RESULT_INVALID_ARGUMENT);

  CHECK_RC(circuit_registry_render_prometheus(r, text, sizeof text, &len), CIRCUIT_RESULT_OK);
  CHECK(strstr(text, "circuit_group_refused_trips_total{group=\"pool\"} 1\n") != NULL);
  CHECK(strstr(text, "circuit_group_open{group=\"pool\"} 1\n") != NULL);

  /* A fraction: half of two members is one place, already taken. */
  CHECK_RC(circuit_registry_set_group_fraction(r, "pool", 4, 0.5), CIRCUIT_RESULT_OK);
  gs.struct_size = sizeof gs;
  CHECK_RC(circuit_registry_group_stats(r, "pool", 4, &gs), CIRCUIT_RESULT_OK);
  CHECK(gs.limit_kind == CIRCUIT_GROUP_LIMIT_FRACTION && gs.limit == 0.5 && gs.max_open == 1);

  circuit_breaker_free(a);
  circuit_breaker_free(b);
  circuit_event_queue_free(q);
  circuit_registry_free(r);
  circuit_config_free(strict);
  circuit_clock_free(clock);
}

/* ---------- fleet policy --------------------------------------------------------- */

/* circuit_sync_set_fleet_policy checks its arguments and refuses bad
 * numbers; a worker whose Redis is unreachable takes a policy all the same
 * (the votes are counted by Redis once it answers; tests against a real
 * redis-server are in Python, Go and sync/tests/quorum.rs). */
static void test_fleet_policy_arguments(void) {
  const circuit_registry *r = NULL;
  circuit_sync *s = NULL;
  circuit_sync_stats st;
  const char *url = "redis://127.0.0.1:1";

  CHECK_RC(circuit_sync_set_fleet_policy(NULL, "p", 1, 2, 0.0, SEC), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK_RC(circuit_registry_new(NULL, 0, 0, NULL, &r), CIRCUIT_RESULT_OK);
  if (!(circuit_features() & CIRCUIT_FEATURE_SYNC)) {
    circuit_registry_free(r);
    return;
  }
  CHECK_RC(circuit_sync_start(r, url, strlen(url), "cpolicy", 7, &s), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_sync_set_fleet_policy(s, NULL, 1, 2, 0.0, SEC), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK_RC(circuit_sync_set_fleet_policy(s, "", 0, 2, 0.0, SEC), CIRCUIT_RESULT_INVALID_CONFIG);
  CHECK_RC(circuit_sync_set_fleet_policy(s, "caf\xc3", 4, 2, 0.0, SEC), CIRCUIT_RESULT_INVALID_UTF8);
  CHECK_RC(circuit_sync_set_fleet_policy(s, "p", 1, 2, 1.5, SEC), CIRCUIT_RESULT_INVALID_CONFIG);
  CHECK_ERR_MENTIONS("fraction");
  CHECK_RC(circuit_sync_set_fleet_policy(s, "p", 1, 2, NAN, SEC), CIRCUIT_RESULT_INVALID_CONFIG);
  CHECK_RC(circuit_sync_set_fleet_policy(s, "p", 1, 2000000, 0.0, SEC), CIRCUIT_RESULT_INVALID_CONFIG);
  CHECK_RC(circuit_sync_set_fleet_policy(s, "p", 1, 2, 0.5, SEC), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_sync_set_fleet_policy(s, "p", 1, 0, 0.0, 0), CIRCUIT_RESULT_OK); /* first */
  memset(&st, 0xAB, sizeof st);
  st.struct_size = sizeof st;
  CHECK_RC(circuit_sync_status(s, &st), CIRCUIT_RESULT_OK);
  CHECK(st.struct_size == sizeof st && st.votes == 0 && st.state == CIRCUIT_SYNC_DEGRADED);
  /* The fleet-config counters, appended last, are filled too. */
  CHECK(st.configs_applied == 0 && st.configs_refused == 0);
  CHECK_RC(circuit_sync_stop(s), CIRCUIT_RESULT_OK);
  circuit_sync_free(s);
  circuit_registry_free(r);
}

int main(void) {
  test_names();
  test_null_arguments();
  test_callbacks();
  test_listener_releasing_its_breaker_is_safe();
  test_callbacks_under_threads();
  test_event_queue();
  test_registry();
  test_sweep_never_evicts_a_held_breaker();
  test_prometheus();
  test_retry();
  test_retry_decide();
  test_latency();
  test_group_guard();
  test_fleet_policy_arguments();
  return check_summary();
}
