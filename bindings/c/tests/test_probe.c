/* C tests of active health probes (circuit_prober_*): a breaker OPEN with
 * no user traffic is probed at its open deadline, through tickets polled by
 * a host thread and through a callback run on the prober's own thread;
 * hostile arguments are refused and change nothing. Real time, kept short
 * (20 ms open durations). Same rules as test_circuit.c: C11 and C++ from
 * one source, -Werror, ASan/LSan/UBSan. Last line: "N passed, M failed". */

#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "circuit.h"

#define MS 1000000ull
#define SEC 1000000000ull

static const circuit_breaker *breaker_open_for(uint64_t open_ns) {
  circuit_config_builder *cb = circuit_config_builder_new();
  circuit_config *cfg = NULL;
  const circuit_breaker *b = NULL;
  CHECK_RC(circuit_config_builder_set_consecutive_failures(cb, 1), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_config_builder_set_open_duration(cb, open_ns), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_config_builder_set_jitter(cb, 0.0), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_config_builder_build(cb, &cfg), CIRCUIT_RESULT_OK);
  circuit_config_builder_free(cb);
  CHECK_RC(circuit_breaker_new(cfg, NULL, &b), CIRCUIT_RESULT_OK);
  circuit_config_free(cfg);
  return b;
}

static void trip(const circuit_breaker *b) {
  circuit_permit p;
  CHECK_RC(circuit_breaker_acquire(b, &p, NULL), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_breaker_record(b, p, CIRCUIT_OUTCOME_FAILURE, 0), CIRCUIT_RESULT_OK);
}

static uint32_t state_of(const circuit_breaker *b) {
  uint32_t s = UINT32_MAX;
  CHECK_RC(circuit_breaker_state(b, &s), CIRCUIT_RESULT_OK);
  return s;
}

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * SEC + (uint64_t)ts.tv_nsec;
}

static void sleep_ms(long ms) {
  struct timespec ts;
  ts.tv_sec = ms / 1000;
  ts.tv_nsec = (ms % 1000) * 1000000L;
  nanosleep(&ts, NULL);
}

static circuit_probe_due due_struct(void) {
  circuit_probe_due d;
  memset(&d, 0, sizeof d);
  d.struct_size = sizeof d;
  return d;
}

/* ---------- tickets: a host thread runs the probe ------------------------------ */

static void test_tickets_recover_with_no_user_traffic(void) {
  const circuit_breaker *b = breaker_open_for(20 * MS);
  circuit_prober *p = NULL;
  uint64_t id = 0;
  CHECK_RC(circuit_prober_new(&p), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_prober_add(p, b, 0, NULL, NULL, NULL, &id), CIRCUIT_RESULT_OK);
  CHECK(id != 0);

  circuit_probe_due d = due_struct();
  /* CLOSED: nothing is due. */
  CHECK_RC(circuit_prober_next(p, 30 * MS, &d), CIRCUIT_RESULT_EMPTY);

  trip(b);
  uint64_t tripped = now_ns();
  CHECK(state_of(b) == CIRCUIT_STATE_OPEN);
  CHECK_RC(circuit_prober_next(p, 5 * SEC, &d), CIRCUIT_RESULT_OK);
  CHECK(now_ns() - tripped >= 20 * MS); /* not before the open deadline */
  CHECK(d.struct_size == sizeof d);
  CHECK(d.probe_id == id);
  /* The probe is the half-open probe. */
  CHECK(state_of(b) == CIRCUIT_STATE_HALF_OPEN);
  /* A failed probe re-opens; the next one is due at the new deadline. */
  CHECK_RC(circuit_prober_complete(p, d.ticket, CIRCUIT_OUTCOME_FAILURE), CIRCUIT_RESULT_OK);
  CHECK(state_of(b) == CIRCUIT_STATE_OPEN);
  /* Completing twice: not found, nothing changes. */
  uint32_t gen = 0, gen2 = 0;
  CHECK_RC(circuit_breaker_generation(b, &gen), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_prober_complete(p, d.ticket, CIRCUIT_OUTCOME_SUCCESS), CIRCUIT_RESULT_NOT_FOUND);
  CHECK_RC(circuit_breaker_generation(b, &gen2), CIRCUIT_RESULT_OK);
  CHECK(gen == gen2);

  CHECK_RC(circuit_prober_next(p, 5 * SEC, &d), CIRCUIT_RESULT_OK);
  /* A bad outcome is refused and the ticket stays outstanding. */
  CHECK_RC(circuit_prober_complete(p, d.ticket, 99), CIRCUIT_RESULT_INVALID_ARGUMENT);
  CHECK_ERR_MENTIONS("outcome");
  CHECK(state_of(b) == CIRCUIT_STATE_HALF_OPEN);
  CHECK_RC(circuit_prober_complete(p, d.ticket, CIRCUIT_OUTCOME_SUCCESS), CIRCUIT_RESULT_OK);
  CHECK(state_of(b) == CIRCUIT_STATE_CLOSED);

  CHECK_RC(circuit_prober_remove(p, id), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_prober_remove(p, id), CIRCUIT_RESULT_NOT_FOUND);
  circuit_prober_free(p);
  circuit_breaker_free(b);
}

/* ---------- a callback on the prober's thread ---------------------------------- */

typedef struct {
  int runs;         /* written by the prober's thread */
  int finalized;    /* written by the thread dropping the probe */
  uint64_t first_id; /* the probe id the first run was given */
} probe_log;

static uint32_t fail_then_succeed(void *userdata, uint64_t probe_id) {
  probe_log *log = (probe_log *)userdata;
  int run = __atomic_fetch_add(&log->runs, 1, __ATOMIC_SEQ_CST);
  if (run == 0) {
    __atomic_store_n(&log->first_id, probe_id, __ATOMIC_SEQ_CST);
  }
  return run == 0 ? CIRCUIT_OUTCOME_FAILURE : CIRCUIT_OUTCOME_SUCCESS;
}

static void count_finalize(void *userdata) {
  probe_log *log = (probe_log *)userdata;
  __atomic_fetch_add(&log->finalized, 1, __ATOMIC_SEQ_CST);
}

static void test_callback_recovers_with_no_user_traffic(void) {
  const circuit_breaker *b = breaker_open_for(20 * MS);
  circuit_prober *p = NULL;
  probe_log log;
  memset(&log, 0, sizeof log);
  uint64_t id = 0;
  CHECK_RC(circuit_prober_new(&p), CIRCUIT_RESULT_OK);
  /* Already past its open deadline when the probe is added: due at once. */
  trip(b);
  sleep_ms(30);
  CHECK_RC(circuit_prober_add(p, b, 0, fail_then_succeed, &log, count_finalize, &id),
           CIRCUIT_RESULT_OK);
  uint64_t deadline = now_ns() + 5 * SEC;
  while (state_of(b) != CIRCUIT_STATE_CLOSED && now_ns() < deadline) {
    sleep_ms(5);
  }
  CHECK(state_of(b) == CIRCUIT_STATE_CLOSED);
  CHECK(__atomic_load_n(&log.runs, __ATOMIC_SEQ_CST) == 2);
  CHECK(__atomic_load_n(&log.first_id, __ATOMIC_SEQ_CST) == id);
  circuit_metrics m;
  memset(&m, 0, sizeof m);
  m.struct_size = sizeof m;
  CHECK_RC(circuit_breaker_metrics(b, &m), CIRCUIT_RESULT_OK);
  CHECK(m.failures == 2); /* the trip and the failed probe */
  CHECK(m.successes == 1);
  /* A polling thread never sees callback probes. */
  circuit_probe_due d = due_struct();
  CHECK_RC(circuit_prober_next(p, 10 * MS, &d), CIRCUIT_RESULT_EMPTY);

  CHECK(__atomic_load_n(&log.finalized, __ATOMIC_SEQ_CST) == 0);
  CHECK_RC(circuit_prober_remove(p, id), CIRCUIT_RESULT_OK);
  CHECK(__atomic_load_n(&log.finalized, __ATOMIC_SEQ_CST) == 1);
  /* Removed: a new outage is not probed. */
  trip(b);
  sleep_ms(60);
  CHECK(state_of(b) == CIRCUIT_STATE_OPEN);
  CHECK(__atomic_load_n(&log.runs, __ATOMIC_SEQ_CST) == 2);
  circuit_prober_free(p);
  circuit_breaker_free(b);
}

static void test_free_runs_the_finalizer_and_stops_the_thread(void) {
  const circuit_breaker *b = breaker_open_for(10 * SEC);
  circuit_prober *p = NULL;
  probe_log log;
  memset(&log, 0, sizeof log);
  uint64_t id = 0;
  CHECK_RC(circuit_prober_new(&p), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_prober_add(p, b, 0, fail_then_succeed, &log, count_finalize, &id),
           CIRCUIT_RESULT_OK);
  trip(b);
  circuit_prober_free(p);
  CHECK(__atomic_load_n(&log.finalized, __ATOMIC_SEQ_CST) == 1);
  CHECK(__atomic_load_n(&log.runs, __ATOMIC_SEQ_CST) == 0);
  circuit_breaker_free(b);
}

/* ---------- close wakes a waiting poller ---------------------------------------- */

typedef struct {
  const circuit_prober *prober;
  uint32_t rc;
} waiter;

static void *wait_for_probe(void *arg) {
  waiter *w = (waiter *)arg;
  circuit_probe_due d = due_struct();
  w->rc = circuit_prober_next(w->prober, 60 * SEC, &d);
  return NULL;
}

static void test_close_wakes_pollers(void) {
  circuit_prober *p = NULL;
  CHECK_RC(circuit_prober_new(&p), CIRCUIT_RESULT_OK);
  waiter w;
  w.prober = p;
  w.rc = UINT32_MAX;
  pthread_t t;
  uint64_t started = now_ns();
  CHECK(pthread_create(&t, NULL, wait_for_probe, &w) == 0);
  sleep_ms(20);
  CHECK_RC(circuit_prober_close(p), CIRCUIT_RESULT_OK);
  pthread_join(t, NULL);
  CHECK(w.rc == CIRCUIT_RESULT_EMPTY);
  CHECK(now_ns() - started < 10 * SEC);
  const circuit_breaker *b = breaker_open_for(20 * MS);
  uint64_t id = 0;
  CHECK_RC(circuit_prober_add(p, b, 0, NULL, NULL, NULL, &id), CIRCUIT_RESULT_INVALID_ARGUMENT);
  CHECK_ERR_MENTIONS("closed");
  circuit_prober_free(p);
  circuit_breaker_free(b);
}

/* ---------- hostile arguments ----------------------------------------------------- */

static void test_hostile_arguments(void) {
  const circuit_breaker *b = breaker_open_for(20 * MS);
  circuit_prober *p = NULL;
  uint64_t id = 0, id2 = 0;
  probe_log log;
  memset(&log, 0, sizeof log);
  circuit_probe_due d = due_struct();

  CHECK_RC(circuit_prober_new(NULL), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK_RC(circuit_prober_new(&p), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_prober_add(NULL, b, 0, NULL, NULL, NULL, &id), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK_RC(circuit_prober_add(p, NULL, 0, NULL, NULL, NULL, &id), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK_ERR_MENTIONS("breaker");
  CHECK_RC(circuit_prober_add(p, b, 0, NULL, NULL, NULL, NULL), CIRCUIT_RESULT_NULL_ARGUMENT);
  /* userdata or a finalizer without a callback: refused, nothing kept. */
  CHECK_RC(circuit_prober_add(p, b, 0, NULL, &log, count_finalize, &id),
           CIRCUIT_RESULT_INVALID_ARGUMENT);
  CHECK_RC(circuit_prober_add(p, b, UINT64_MAX, NULL, NULL, NULL, &id),
           CIRCUIT_RESULT_INVALID_ARGUMENT);
  CHECK_ERR_MENTIONS("min_interval");
  CHECK_RC(circuit_prober_add(p, b, 0, NULL, NULL, NULL, &id), CIRCUIT_RESULT_OK);
  /* Twice for one breaker: refused; the refused callback's finalizer
   * never runs (the caller still owns its userdata). */
  CHECK_RC(circuit_prober_add(p, b, 0, fail_then_succeed, &log, count_finalize, &id2),
           CIRCUIT_RESULT_INVALID_ARGUMENT);
  CHECK_ERR_MENTIONS("already");
  CHECK(log.finalized == 0);
  CHECK_RC(circuit_prober_remove(NULL, id), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK_RC(circuit_prober_remove(p, id + 1000), CIRCUIT_RESULT_NOT_FOUND);
  CHECK_RC(circuit_prober_next(NULL, 0, &d), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK_RC(circuit_prober_next(p, 0, NULL), CIRCUIT_RESULT_NULL_ARGUMENT);
  d.struct_size = 3;
  CHECK_RC(circuit_prober_next(p, 0, &d), CIRCUIT_RESULT_INVALID_ARGUMENT);
  d = due_struct();
  CHECK_RC(circuit_prober_complete(NULL, 1, CIRCUIT_OUTCOME_SUCCESS), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK_RC(circuit_prober_complete(p, 12345, CIRCUIT_OUTCOME_SUCCESS), CIRCUIT_RESULT_NOT_FOUND);
  CHECK_ERR_MENTIONS("ticket");
  CHECK_RC(circuit_prober_close(NULL), CIRCUIT_RESULT_NULL_ARGUMENT);
  /* Overrides suppress probes. */
  trip(b);
  CHECK_RC(circuit_breaker_force(b, CIRCUIT_OVERRIDE_FORCED_OPEN, 0), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_prober_next(p, 60 * MS, &d), CIRCUIT_RESULT_EMPTY);
  circuit_prober_free(NULL);
  circuit_prober_free(p);
  circuit_breaker_free(b);
}

/* ---------- a breaker released by the host stops being probed -------------------- */

static void test_released_breaker_is_forgotten(void) {
  const circuit_breaker *b = breaker_open_for(20 * MS);
  circuit_prober *p = NULL;
  uint64_t id = 0;
  CHECK_RC(circuit_prober_new(&p), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_prober_add(p, b, 0, NULL, NULL, NULL, &id), CIRCUIT_RESULT_OK);
  trip(b);
  circuit_breaker_free(b);
  circuit_probe_due d = due_struct();
  CHECK_RC(circuit_prober_next(p, 60 * MS, &d), CIRCUIT_RESULT_EMPTY);
  CHECK_RC(circuit_prober_remove(p, id), CIRCUIT_RESULT_NOT_FOUND);
  circuit_prober_free(p);
}

int main(void) {
  test_tickets_recover_with_no_user_traffic();
  test_callback_recovers_with_no_user_traffic();
  test_free_runs_the_finalizer_and_stops_the_thread();
  test_close_wakes_pollers();
  test_hostile_arguments();
  test_released_breaker_is_forgotten();
  return check_summary();
}
