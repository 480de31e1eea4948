/* C tests of libcircuit's ABI. Written in the common subset of C11 and C++
 * so that ci/c.sh compiles this same file as C (gcc, clang) and as C++
 * (g++) to check the header, all with -Wall -Wextra -Wpedantic -Werror,
 * and runs it under AddressSanitizer (with LeakSanitizer) and
 * UndefinedBehaviorSanitizer.
 *
 * Covers: versions; result names; the last-error protocol; every function
 * fed NULL, garbage enum values, bad UTF-8 and wrong-size structs; config
 * validation; clocks; trip and recovery on a manual clock; overrides;
 * reference counting across threads; a pthread stress test with exact
 * counter conservation. The last line printed is "N passed, M failed". */

#define _POSIX_C_SOURCE 200809L /* sched_yield */

#include <assert.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "circuit.h"

#ifndef CIRCUIT_EXPECTED_VERSION
#error "build with -DCIRCUIT_EXPECTED_VERSION='\"x.y.z\"' (the version in Cargo.toml)"
#endif

uint32_t double_include_a(void);
uint32_t double_include_b(void);

#define MS 1000000ull
#define SEC 1000000000ull

static_assert(sizeof(circuit_permit) == 8, "a permit is two uint32_t, passed by value");
static_assert(CIRCUIT_STATE_COUNT == 7, "seven states");

/* ---------- helpers ---------------------------------------------------- */

/* A config with deterministic timing: no jitter, fixed seed. */
static circuit_config *make_config(uint32_t consecutive, uint64_t open_ns, uint32_t probes) {
  circuit_config_builder *cb = circuit_config_builder_new();
  circuit_config *cfg = NULL;
  CHECK(cb != NULL);
  CHECK_RC(circuit_config_builder_set_consecutive_failures(cb, consecutive), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_config_builder_set_open_duration(cb, open_ns), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_config_builder_set_max_open_duration(cb, 10 * SEC), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_config_builder_set_jitter(cb, 0.0), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_config_builder_set_seed(cb, 42), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_config_builder_set_half_open_probes(cb, probes), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_config_builder_build(cb, &cfg), CIRCUIT_RESULT_OK);
  circuit_config_builder_free(cb);
  return cfg;
}

static const circuit_breaker *make_breaker(const circuit_config *cfg, const circuit_clock *clock) {
  const circuit_breaker *b = NULL;
  CHECK_RC(circuit_breaker_new(cfg, clock, &b), CIRCUIT_RESULT_OK);
  CHECK(b != NULL);
  return b;
}

static uint32_t state_of(const circuit_breaker *b) {
  uint32_t s = UINT32_MAX;
  CHECK_RC(circuit_breaker_state(b, &s), CIRCUIT_RESULT_OK);
  return s;
}

static uint32_t generation_of(const circuit_breaker *b) {
  uint32_t g = UINT32_MAX;
  CHECK_RC(circuit_breaker_generation(b, &g), CIRCUIT_RESULT_OK);
  return g;
}

static circuit_metrics metrics_of(const circuit_breaker *b) {
  circuit_metrics m;
  memset(&m, 0, sizeof m);
  m.struct_size = (uint32_t)sizeof m;
  CHECK_RC(circuit_breaker_metrics(b, &m), CIRCUIT_RESULT_OK);
  return m;
}

/* Acquire that must succeed. */
static circuit_permit admit(const circuit_breaker *b) {
  circuit_permit p;
  uint64_t retry = 0;
  p.generation = 0;
  p.flags = 0;
  CHECK_RC(circuit_breaker_acquire(b, &p, &retry), CIRCUIT_RESULT_OK);
  return p;
}

/* Acquire that must be rejected with `want`; returns the retry-after. */
static uint64_t refuse(const circuit_breaker *b, circuit_result want) {
  circuit_permit p;
  uint64_t retry = 12345;
  p.generation = 0xdeadbeef;
  p.flags = 0xdeadbeef;
  CHECK_RC(circuit_breaker_acquire(b, &p, &retry), want);
  CHECK(p.generation == 0xdeadbeef && p.flags == 0xdeadbeef); /* not written */
  return retry;
}

static int all_bytes(const void *p, size_t n, unsigned char v) {
  const unsigned char *c = (const unsigned char *)p;
  size_t i;
  for (i = 0; i < n; i++) {
    if (c[i] != v) return 0;
  }
  return 1;
}

/* ---------- versions, names, last error ---------------------------------- */

static void test_versions(void) {
  char numeric[64];
  CHECK(circuit_abi_version() == CIRCUIT_ABI_VERSION);
  CHECK(double_include_a() == CIRCUIT_ABI_VERSION);
  CHECK(double_include_b() == CIRCUIT_ABI_VERSION);
  CHECK(circuit_version() != NULL);
  CHECK(strcmp(circuit_version(), CIRCUIT_EXPECTED_VERSION) == 0);
  snprintf(numeric, sizeof numeric, "%d.%d.%d", CIRCUIT_VERSION_MAJOR, CIRCUIT_VERSION_MINOR,
           CIRCUIT_VERSION_PATCH);
  CHECK(strcmp(numeric, CIRCUIT_EXPECTED_VERSION) == 0);
}

static void test_result_names(void) {
  static const char *const names[] = {
      "CIRCUIT_RESULT_OK",
      "CIRCUIT_RESULT_NULL_ARGUMENT",
      "CIRCUIT_RESULT_INVALID_ARGUMENT",
      "CIRCUIT_RESULT_INVALID_CONFIG",
      "CIRCUIT_RESULT_INVALID_UTF8",
      "CIRCUIT_RESULT_REJECTED_OPEN",
      "CIRCUIT_RESULT_REJECTED_FORCED_OPEN",
      "CIRCUIT_RESULT_REJECTED_HALF_OPEN_FULL",
      "CIRCUIT_RESULT_STALE",
      "CIRCUIT_RESULT_BUFFER_TOO_SMALL",
      "CIRCUIT_RESULT_NOT_FOUND",
      "CIRCUIT_RESULT_LIMIT_EXCEEDED",
      "CIRCUIT_RESULT_PANIC",
      "CIRCUIT_RESULT_RETRY_EXHAUSTED",
      "CIRCUIT_RESULT_BUDGET_EXHAUSTED",
      "CIRCUIT_RESULT_EMPTY",
      "CIRCUIT_RESULT_NOT_BUILT",
      "CIRCUIT_RESULT_REJECTED_RAMP_LIMITED",
      "CIRCUIT_RESULT_SEGMENT_IO",
      "CIRCUIT_RESULT_SEGMENT_INVALID",
      "CIRCUIT_RESULT_SEGMENT_UNSAFE",
      "CIRCUIT_RESULT_SEGMENT_BUSY",
      "CIRCUIT_RESULT_SNAPSHOT_TRUNCATED",
      "CIRCUIT_RESULT_SNAPSHOT_FOREIGN",
      "CIRCUIT_RESULT_SNAPSHOT_VERSION",
      "CIRCUIT_RESULT_SNAPSHOT_CORRUPT",
      "CIRCUIT_RESULT_SNAPSHOT_CONFIG_MISMATCH",
  };
  uint32_t i;
  /* The discriminants are part of the ABI. */
  CHECK(CIRCUIT_RESULT_OK == 0 && CIRCUIT_RESULT_NULL_ARGUMENT == 1 &&
        CIRCUIT_RESULT_REJECTED_OPEN == 5 && CIRCUIT_RESULT_STALE == 8 &&
        CIRCUIT_RESULT_PANIC == 12 && CIRCUIT_RESULT_EMPTY == 15);
  for (i = 0; i < sizeof names / sizeof names[0]; i++) {
    CHECK(strcmp(circuit_result_str(i), names[i]) == 0);
  }
  CHECK(strcmp(circuit_result_str(i), "CIRCUIT_RESULT_UNKNOWN") == 0);
  CHECK(strcmp(circuit_result_str(UINT32_MAX), "CIRCUIT_RESULT_UNKNOWN") == 0);
}

static void *fresh_thread_last_error(void *arg) {
  char buf[16];
  size_t len = 99;
  uint32_t *rc = (uint32_t *)arg;
  memset(buf, 'x', sizeof buf);
  rc[0] = (uint32_t)circuit_last_error(buf, sizeof buf, &len);
  rc[1] = (uint32_t)len;
  rc[2] = buf[0] == '\0';
  return NULL;
}

static void test_last_error(void) {
  char small[8];
  char *buf;
  size_t len = 0, len2 = 0;
  uint64_t now = 7;
  uint32_t fresh[3];
  pthread_t t;

  /* Provoke an error: a NULL receiver. */
  CHECK_RC(circuit_clock_now(NULL, &now), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK(now == 7);

  /* Ask for the length. */
  CHECK_RC(circuit_last_error(NULL, 0, &len), CIRCUIT_RESULT_BUFFER_TOO_SMALL);
  CHECK(len > 10);
  /* Too small by one (no room for the NUL): nothing written. */
  buf = (char *)malloc(len + 1);
  memset(buf, 'x', len + 1);
  CHECK_RC(circuit_last_error(buf, len, &len2), CIRCUIT_RESULT_BUFFER_TOO_SMALL);
  CHECK(len2 == len);
  CHECK(all_bytes(buf, len + 1, 'x'));
  /* Exactly enough. */
  CHECK_RC(circuit_last_error(buf, len + 1, &len2), CIRCUIT_RESULT_OK);
  CHECK(len2 == len && buf[len] == '\0' && strlen(buf) == len);
  CHECK(strncmp(buf, "CIRCUIT_RESULT_NULL_ARGUMENT", 28) == 0);
  CHECK(strstr(buf, "clock") != NULL);
  free(buf);
  /* Small buffer: untouched, length reported; querying does not reset it. */
  memset(small, 'y', sizeof small);
  CHECK_RC(circuit_last_error(small, sizeof small, &len2), CIRCUIT_RESULT_BUFFER_TOO_SMALL);
  CHECK(len2 == len && all_bytes(small, sizeof small, 'y'));

  /* Each thread has its own message; a fresh thread has none. */
  CHECK(pthread_create(&t, NULL, fresh_thread_last_error, fresh) == 0);
  CHECK(pthread_join(t, NULL) == 0);
  CHECK_RC(fresh[0], CIRCUIT_RESULT_OK);
  CHECK(fresh[1] == 0 && fresh[2] == 1);
  CHECK_RC(circuit_last_error(NULL, 0, &len2), CIRCUIT_RESULT_BUFFER_TOO_SMALL);
  CHECK(len2 == len);

  /* Misuse of circuit_last_error itself. */
  CHECK_RC(circuit_last_error(NULL, 0, NULL), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK_RC(circuit_last_error(NULL, 5, &len2), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK_ERR_MENTIONS("buf");
}

/* ---------- NULL everywhere ---------------------------------------------- */

static void test_null_arguments(void) {
  circuit_config_builder *cb = circuit_config_builder_new();
  circuit_config *cfg = NULL;
  circuit_clock *clock = circuit_clock_manual_new(0);
  const circuit_breaker *b = NULL;
  const circuit_breaker *nb = (const circuit_breaker *)0;
  circuit_permit p;
  uint64_t u64 = 77;
  uint32_t u32 = 77;

  p.generation = 0;
  p.flags = 0;

  /* Free functions accept NULL and do nothing. */
  circuit_clock_free(NULL);
  circuit_config_builder_free(NULL);
  circuit_config_free(NULL);
  circuit_breaker_free(NULL);
  CHECK(circuit_breaker_retain(NULL) == NULL);

  /* Clocks. */
  CHECK_RC(circuit_clock_now(clock, NULL), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK_ERR_MENTIONS("out_ns");
  CHECK_RC(circuit_clock_now(NULL, &u64), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK_RC(circuit_clock_advance(NULL, 1), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK_RC(circuit_clock_set(NULL, 1), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK(u64 == 77);

  /* Builder and config. */
  CHECK_RC(circuit_config_builder_build(NULL, &cfg), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK_RC(circuit_config_builder_build(cb, NULL), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK_ERR_MENTIONS("out_config");
  CHECK(cfg == NULL);
  CHECK_RC(circuit_config_builder_set_consecutive_failures(NULL, 3), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK_RC(circuit_config_builder_set_failure_rate(NULL, 0.5), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK_RC(circuit_config_builder_set_slow_call(NULL, 0.5, MS), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK_RC(circuit_config_builder_set_ewma(NULL, 0.5, 0.5), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK_RC(circuit_config_builder_set_minimum_calls(NULL, 5), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK_RC(circuit_config_builder_set_count_window(NULL, 5), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK_RC(circuit_config_builder_set_time_window(NULL, SEC, 10), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK_RC(circuit_config_builder_set_open_duration(NULL, SEC), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK_RC(circuit_config_builder_set_max_open_duration(NULL, SEC), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK_RC(circuit_config_builder_set_backoff_multiplier(NULL, 2.0), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK_RC(circuit_config_builder_set_jitter(NULL, 0.1), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK_RC(circuit_config_builder_set_half_open_probes(NULL, 1), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK_RC(circuit_config_builder_set_half_open_successes(NULL, 1), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK_RC(circuit_config_builder_set_probe_lease(NULL, SEC), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK_RC(circuit_config_builder_set_metrics(NULL, 1), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK_RC(circuit_config_builder_set_seed(NULL, 1), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK_ERR_MENTIONS("builder");
  CHECK_RC(circuit_config_builder_build(cb, &cfg), CIRCUIT_RESULT_OK);

  /* Breaker creation. */
  CHECK_RC(circuit_breaker_new(NULL, clock, &b), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK_ERR_MENTIONS("config");
  CHECK_RC(circuit_breaker_new(cfg, clock, NULL), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK(b == NULL);
  b = make_breaker(cfg, NULL); /* NULL clock: the monotonic clock */

  /* Call protocol. */
  CHECK_RC(circuit_breaker_acquire(nb, &p, &u64), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK_ERR_MENTIONS("breaker");
  CHECK_RC(circuit_breaker_acquire(b, NULL, &u64), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK_ERR_MENTIONS("out_permit");
  CHECK(u64 == 77);
  CHECK_RC(circuit_breaker_acquire(b, &p, NULL), CIRCUIT_RESULT_OK); /* retry-after optional */
  CHECK_RC(circuit_breaker_record(nb, p, CIRCUIT_OUTCOME_SUCCESS, 1), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK_RC(circuit_breaker_record_retry_after(nb, p, CIRCUIT_OUTCOME_FAILURE, 1, SEC),
           CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK_RC(circuit_breaker_record(b, p, CIRCUIT_OUTCOME_SUCCESS, 1), CIRCUIT_RESULT_OK);

  /* Queries and overrides. */
  CHECK_RC(circuit_breaker_state(nb, &u32), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK_RC(circuit_breaker_state(b, NULL), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK_RC(circuit_breaker_generation(nb, &u32), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK_RC(circuit_breaker_generation(b, NULL), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK(u32 == 77);
  CHECK_RC(circuit_breaker_metrics(nb, NULL), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK_RC(circuit_breaker_metrics(b, NULL), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK_ERR_MENTIONS("metrics");
  CHECK_RC(circuit_breaker_force(nb, CIRCUIT_OVERRIDE_FORCED_OPEN, 0), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK_RC(circuit_breaker_clear_override(nb), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK_RC(circuit_breaker_reset(nb), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK(state_of(b) == CIRCUIT_STATE_CLOSED);

  /* Strings. */
  CHECK_RC(circuit_state_parse(NULL, 4, &u32), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK_ERR_MENTIONS("name");
  CHECK_RC(circuit_state_parse("open", 4, NULL), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK(u32 == 77);

  circuit_breaker_free(b);
  circuit_config_free(cfg);
  circuit_config_builder_free(cb);
  circuit_clock_free(clock);
}

/* ---------- garbage enum values ------------------------------------------ */

static void test_garbage_enums(void) {
  circuit_clock *clock = circuit_clock_manual_new(0);
  circuit_config *cfg = make_config(1, SEC, 1);
  const circuit_breaker *b = make_breaker(cfg, clock);
  circuit_config_builder *cb = circuit_config_builder_new();
  const uint32_t bad[] = {4, 5, 1000, 0x80000000u, UINT32_MAX};
  circuit_permit p = admit(b);
  uint32_t g0 = generation_of(b);
  circuit_metrics m;
  size_t i;

  for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    CHECK_RC(circuit_breaker_record(b, p, bad[i], 1), CIRCUIT_RESULT_INVALID_ARGUMENT);
    CHECK_RC(circuit_breaker_record_retry_after(b, p, bad[i], 1, SEC),
             CIRCUIT_RESULT_INVALID_ARGUMENT);
  }
  CHECK_ERR_MENTIONS("outcome");
  /* Nothing was recorded (a failure would have tripped this breaker); the
   * permit is still good. */
  m = metrics_of(b);
  CHECK(m.successes + m.failures + m.timeouts + m.ignored + m.stale == 0);
  CHECK(state_of(b) == CIRCUIT_STATE_CLOSED && generation_of(b) == g0);
  CHECK_RC(circuit_breaker_record(b, p, CIRCUIT_OUTCOME_SUCCESS, 1), CIRCUIT_RESULT_OK);

  /* Override modes: 1..4 are valid; 0 is not an override. */
  CHECK_RC(circuit_breaker_force(b, 0, 0), CIRCUIT_RESULT_INVALID_ARGUMENT);
  CHECK_ERR_MENTIONS("mode");
  for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    if (bad[i] == 4) continue; /* CIRCUIT_OVERRIDE_METRICS_ONLY */
    CHECK_RC(circuit_breaker_force(b, bad[i], SEC), CIRCUIT_RESULT_INVALID_ARGUMENT);
  }
  CHECK(state_of(b) == CIRCUIT_STATE_CLOSED && generation_of(b) == g0);

  /* Booleans are enums too. */
  CHECK_RC(circuit_config_builder_set_metrics(cb, 2), CIRCUIT_RESULT_INVALID_ARGUMENT);
  CHECK_RC(circuit_config_builder_set_metrics(cb, UINT32_MAX), CIRCUIT_RESULT_INVALID_ARGUMENT);
  CHECK_RC(circuit_config_builder_set_metrics(cb, 0), CIRCUIT_RESULT_OK);

  /* Names of unknown codes. */
  CHECK(strcmp(circuit_state_str(CIRCUIT_STATE_COUNT), "unknown") == 0);
  CHECK(strcmp(circuit_state_str(UINT32_MAX), "unknown") == 0);

  circuit_config_builder_free(cb);
  circuit_breaker_free(b);
  circuit_config_free(cfg);
  circuit_clock_free(clock);
}

/* ---------- strings -------------------------------------------------------- */

static void test_strings(void) {
  static const char *const bad_utf8[] = {
      "\xff",          /* never valid */
      "\xc0\xaf",      /* overlong '/' */
      "\xe2\x82",      /* truncated sequence */
      "\xed\xa0\x80",  /* UTF-16 surrogate */
      "open\x80",      /* stray continuation byte */
      "\xf4\x90\x80\x80", /* above U+10FFFF */
  };
  uint32_t s, code = 99;
  size_t i;

  for (s = 0; s < CIRCUIT_STATE_COUNT; s++) {
    const char *name = circuit_state_str(s);
    CHECK_RC(circuit_state_parse(name, strlen(name), &code), CIRCUIT_RESULT_OK);
    CHECK(code == s);
  }
  CHECK(strcmp(circuit_state_str(CIRCUIT_STATE_HALF_OPEN), "half_open") == 0);

  code = 99;
  for (i = 0; i < sizeof bad_utf8 / sizeof bad_utf8[0]; i++) {
    CHECK_RC(circuit_state_parse(bad_utf8[i], strlen(bad_utf8[i]), &code),
             CIRCUIT_RESULT_INVALID_UTF8);
  }
  CHECK_ERR_MENTIONS("UTF-8");
  CHECK(code == 99);
  /* Lengths are honoured: no NUL needed, none read past. */
  CHECK_RC(circuit_state_parse("openXYZ", 4, &code), CIRCUIT_RESULT_OK);
  CHECK(code == CIRCUIT_STATE_OPEN);
  CHECK_RC(circuit_state_parse("open", 2, &code), CIRCUIT_RESULT_NOT_FOUND);
  CHECK_RC(circuit_state_parse("open\0", 5, &code), CIRCUIT_RESULT_NOT_FOUND);
  CHECK_RC(circuit_state_parse("Open", 4, &code), CIRCUIT_RESULT_NOT_FOUND);
  CHECK_ERR_MENTIONS("Open");
  CHECK_RC(circuit_state_parse(NULL, 0, &code), CIRCUIT_RESULT_NOT_FOUND); /* empty name */
  CHECK(code == CIRCUIT_STATE_OPEN);
}

/* ---------- size-tagged structs -------------------------------------------- */

static void test_struct_sizes(void) {
  struct {
    circuit_metrics m;
    unsigned char tail[64];
  } big;
  circuit_metrics m;
  const uint32_t bad[] = {0, 1, 4, 7, 9, 12, 15};
  circuit_clock *clock = circuit_clock_manual_new(0);
  circuit_config *cfg = make_config(5, SEC, 1);
  const circuit_breaker *b = make_breaker(cfg, clock);
  circuit_permit p = admit(b);
  size_t i;

  CHECK_RC(circuit_breaker_record(b, p, CIRCUIT_OUTCOME_SUCCESS, 1), CIRCUIT_RESULT_OK);

  for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    memset(&m, 0xab, sizeof m);
    m.struct_size = bad[i];
    CHECK_RC(circuit_breaker_metrics(b, &m), CIRCUIT_RESULT_INVALID_ARGUMENT);
    CHECK(m.struct_size == bad[i]);
    CHECK(all_bytes((const unsigned char *)&m + 4, sizeof m - 4, 0xab));
  }
  CHECK_ERR_MENTIONS("struct_size");

  /* An older, smaller struct: only its bytes are filled. */
  memset(&m, 0xab, sizeof m);
  m.struct_size = 8;
  CHECK_RC(circuit_breaker_metrics(b, &m), CIRCUIT_RESULT_OK);
  CHECK(m.struct_size == 8 && m.state == CIRCUIT_STATE_CLOSED);
  CHECK(all_bytes((const unsigned char *)&m + 8, sizeof m - 8, 0xab));

  memset(&m, 0xab, sizeof m);
  m.struct_size = 24; /* up to and including `successes` */
  CHECK_RC(circuit_breaker_metrics(b, &m), CIRCUIT_RESULT_OK);
  CHECK(m.struct_size == 24 && m.generation == generation_of(b) && m.reserved == 0 &&
        m.successes == 1);
  CHECK(all_bytes((const unsigned char *)&m + 24, sizeof m - 24, 0xab));

  /* A newer, larger struct: the library fills what it knows and says so. */
  memset(&big, 0xab, sizeof big);
  big.m.struct_size = (uint32_t)sizeof big;
  CHECK_RC(circuit_breaker_metrics(b, &big.m), CIRCUIT_RESULT_OK);
  CHECK(big.m.struct_size == sizeof(circuit_metrics));
  CHECK(big.m.successes == 1 && big.m.failures == 0 && big.m.transitions_to[0] == 0);
  CHECK(all_bytes(big.tail, sizeof big.tail, 0xab));

  /* The exact size. */
  m = metrics_of(b);
  CHECK(m.struct_size == sizeof m && m.successes == 1 && m.window_calls == 0);

  circuit_breaker_free(b);
  circuit_config_free(cfg);
  circuit_clock_free(clock);
}

/* ---------- config validation ---------------------------------------------- */

/* A breaker has one window: setting both is refused when building, in
 * either order, and the error names both fields (the same error Python and
 * Go report, from the same core builder). */
static void test_config_errors_match_every_host(void) {
  int order;
  for (order = 0; order < 2; order++) {
    circuit_config_builder *cb = circuit_config_builder_new();
    circuit_config *cfg = NULL;
    if (order == 0) {
      CHECK_RC(circuit_config_builder_set_count_window(cb, 50), CIRCUIT_RESULT_OK);
      CHECK_RC(circuit_config_builder_set_time_window(cb, 10 * SEC, 0), CIRCUIT_RESULT_OK);
    } else {
      CHECK_RC(circuit_config_builder_set_time_window(cb, 10 * SEC, 0), CIRCUIT_RESULT_OK);
      CHECK_RC(circuit_config_builder_set_count_window(cb, 50), CIRCUIT_RESULT_OK);
    }
    CHECK_RC(circuit_config_builder_build(cb, &cfg), CIRCUIT_RESULT_INVALID_CONFIG);
    CHECK_ERR_MENTIONS("count_window: count_window and time_window are exclusive: a breaker has one window");
    CHECK(cfg == NULL);
    circuit_config_builder_free(cb);
  }
  {
    /* Two more of the bad configs every host's test shares. */
    circuit_config_builder *cb = circuit_config_builder_new();
    circuit_config *cfg = NULL;
    CHECK_RC(circuit_config_builder_set_jitter(cb, 1.0), CIRCUIT_RESULT_INVALID_CONFIG);
    CHECK_ERR_MENTIONS("jitter: 1 must be in [0, 1)");
    CHECK_RC(circuit_config_builder_set_half_open_probes(cb, 2), CIRCUIT_RESULT_OK);
    CHECK_RC(circuit_config_builder_set_half_open_successes(cb, 3), CIRCUIT_RESULT_OK);
    CHECK_RC(circuit_config_builder_build(cb, &cfg), CIRCUIT_RESULT_INVALID_CONFIG);
    CHECK_ERR_MENTIONS("half_open_successes: 3 exceeds half_open_probes 2");
    CHECK(cfg == NULL);
    circuit_config_builder_free(cb);
  }
  {
    /* A time window alone builds; 0 buckets takes the library's default. */
    circuit_config_builder *cb = circuit_config_builder_new();
    circuit_config *cfg = NULL;
    CHECK_RC(circuit_config_builder_set_time_window(cb, 10 * SEC, 0), CIRCUIT_RESULT_OK);
    CHECK_RC(circuit_config_builder_build(cb, &cfg), CIRCUIT_RESULT_OK);
    circuit_config_free(cfg);
    circuit_config_builder_free(cb);
  }
}

/* Whether the library reads call durations is a question to the library. */
static void test_needs_durations(void) {
  circuit_config_builder *cb = circuit_config_builder_new();
  circuit_config *cfg = NULL;
  const circuit_breaker *b;
  uint32_t needs = 7;
  CHECK_RC(circuit_config_builder_build(cb, &cfg), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_config_needs_durations(cfg, &needs), CIRCUIT_RESULT_OK);
  CHECK(needs == 0);
  circuit_config_free(cfg);
  CHECK_RC(circuit_config_builder_set_slow_call(cb, 0.5, 100 * MS), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_config_builder_build(cb, &cfg), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_config_needs_durations(cfg, &needs), CIRCUIT_RESULT_OK);
  CHECK(needs == 1);
  b = make_breaker(cfg, NULL);
  needs = 7;
  CHECK_RC(circuit_breaker_needs_durations(b, &needs), CIRCUIT_RESULT_OK);
  CHECK(needs == 1);
  CHECK_RC(circuit_breaker_needs_durations(b, NULL), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK_RC(circuit_config_needs_durations(NULL, &needs), CIRCUIT_RESULT_NULL_ARGUMENT);
  circuit_breaker_free(b);
  circuit_config_free(cfg);
  circuit_config_builder_free(cb);
}

static void test_config(void) {
  circuit_config_builder *cb = circuit_config_builder_new();
  circuit_config *cfg = NULL;
  const circuit_breaker *b1, *b2;

  /* Each setter refuses a value no configuration accepts, names the
   * option, and leaves the builder as it was. */
  CHECK_RC(circuit_config_builder_set_failure_rate(cb, 1.5), CIRCUIT_RESULT_INVALID_CONFIG);
  CHECK_ERR_MENTIONS("failure_rate");
  CHECK_RC(circuit_config_builder_set_failure_rate(cb, -0.5), CIRCUIT_RESULT_INVALID_CONFIG);
  CHECK_RC(circuit_config_builder_set_failure_rate(cb, (double)NAN), CIRCUIT_RESULT_INVALID_CONFIG);
  CHECK_RC(circuit_config_builder_set_slow_call(cb, 0.5, 0), CIRCUIT_RESULT_INVALID_CONFIG);
  CHECK_ERR_MENTIONS("slow_call");
  CHECK_RC(circuit_config_builder_set_ewma(cb, 1.5, 0.5), CIRCUIT_RESULT_INVALID_CONFIG);
  CHECK_ERR_MENTIONS("ewma");
  CHECK_RC(circuit_config_builder_set_minimum_calls(cb, 0), CIRCUIT_RESULT_INVALID_CONFIG);
  CHECK_ERR_MENTIONS("minimum_calls");
  CHECK_RC(circuit_config_builder_set_count_window(cb, 0), CIRCUIT_RESULT_INVALID_CONFIG);
  CHECK_RC(circuit_config_builder_set_count_window(cb, UINT32_MAX), CIRCUIT_RESULT_INVALID_CONFIG);
  CHECK_ERR_MENTIONS("count_window");
  CHECK_RC(circuit_config_builder_set_time_window(cb, SEC, 1025), CIRCUIT_RESULT_INVALID_CONFIG);
  CHECK_RC(circuit_config_builder_set_time_window(cb, 10 * MS, 1000), CIRCUIT_RESULT_INVALID_CONFIG);
  CHECK_ERR_MENTIONS("time_window");
  CHECK_RC(circuit_config_builder_set_open_duration(cb, 0), CIRCUIT_RESULT_INVALID_CONFIG);
  CHECK_RC(circuit_config_builder_set_open_duration(cb, UINT64_MAX), CIRCUIT_RESULT_INVALID_CONFIG);
  CHECK_ERR_MENTIONS("open_duration");
  CHECK_RC(circuit_config_builder_set_max_open_duration(cb, 1), CIRCUIT_RESULT_INVALID_CONFIG);
  CHECK_RC(circuit_config_builder_set_backoff_multiplier(cb, 0.5), CIRCUIT_RESULT_INVALID_CONFIG);
  CHECK_RC(circuit_config_builder_set_backoff_multiplier(cb, (double)INFINITY), CIRCUIT_RESULT_INVALID_CONFIG);
  CHECK_ERR_MENTIONS("backoff_multiplier");
  CHECK_RC(circuit_config_builder_set_jitter(cb, 1.0), CIRCUIT_RESULT_INVALID_CONFIG);
  CHECK_RC(circuit_config_builder_set_jitter(cb, -0.01), CIRCUIT_RESULT_INVALID_CONFIG);
  CHECK_ERR_MENTIONS("jitter");
  CHECK_RC(circuit_config_builder_set_half_open_probes(cb, 0), CIRCUIT_RESULT_INVALID_CONFIG);
  CHECK_RC(circuit_config_builder_set_half_open_probes(cb, 256), CIRCUIT_RESULT_INVALID_CONFIG);
  CHECK_ERR_MENTIONS("half_open_probes");
  CHECK_RC(circuit_config_builder_set_probe_lease(cb, 0), CIRCUIT_RESULT_INVALID_CONFIG);
  CHECK_ERR_MENTIONS("probe_lease");
  CHECK_RC(circuit_config_builder_build(cb, &cfg), CIRCUIT_RESULT_OK);
  circuit_config_free(cfg);
  cfg = NULL;

  /* Relations are checked when building, so setters may come in any order. */
  CHECK_RC(circuit_config_builder_set_open_duration(cb, 120 * SEC), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_config_builder_build(cb, &cfg), CIRCUIT_RESULT_INVALID_CONFIG);
  CHECK_ERR_MENTIONS("open_duration");
  CHECK(cfg == NULL);
  CHECK_RC(circuit_config_builder_set_max_open_duration(cb, 300 * SEC), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_config_builder_set_half_open_probes(cb, 2), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_config_builder_set_half_open_successes(cb, 3), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_config_builder_build(cb, &cfg), CIRCUIT_RESULT_INVALID_CONFIG);
  CHECK_ERR_MENTIONS("half_open_successes");
  CHECK_RC(circuit_config_builder_set_half_open_successes(cb, 0), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_config_builder_set_failure_rate(cb, 0.5), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_config_builder_set_count_window(cb, 20), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_config_builder_set_minimum_calls(cb, 30), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_config_builder_build(cb, &cfg), CIRCUIT_RESULT_INVALID_CONFIG);
  CHECK_ERR_MENTIONS("minimum_calls");
  CHECK_RC(circuit_config_builder_set_minimum_calls(cb, 10), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_config_builder_set_slow_call(cb, 0.8, 100 * MS), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_config_builder_set_ewma(cb, 0.2, 0.9), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_config_builder_set_metrics(cb, 1), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_config_builder_set_probe_lease(cb, 5 * SEC), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_config_builder_build(cb, &cfg), CIRCUIT_RESULT_OK);
  CHECK(cfg != NULL);
  circuit_config_builder_free(cb);

  /* One config, many breakers; the config may go before them. */
  b1 = make_breaker(cfg, NULL);
  b2 = make_breaker(cfg, NULL);
  circuit_config_free(cfg);
  CHECK(b1 != b2 && state_of(b1) == CIRCUIT_STATE_CLOSED && state_of(b2) == CIRCUIT_STATE_CLOSED);
  circuit_breaker_free(b1);
  circuit_breaker_free(b2);
}

/* ---------- clocks --------------------------------------------------------- */

static void test_clocks(void) {
  circuit_clock *manual = circuit_clock_manual_new(100);
  circuit_clock *mono = circuit_clock_monotonic_new();
  uint64_t t = 0, t2 = 0;
  circuit_config *cfg = make_config(1, SEC, 1);
  const circuit_breaker *b;
  circuit_permit p;

  CHECK_RC(circuit_clock_now(manual, &t), CIRCUIT_RESULT_OK);
  CHECK(t == 100);
  CHECK_RC(circuit_clock_advance(manual, 50), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_clock_now(manual, &t), CIRCUIT_RESULT_OK);
  CHECK(t == 150);
  CHECK_RC(circuit_clock_set(manual, 10), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_clock_now(manual, &t), CIRCUIT_RESULT_OK);
  CHECK(t == 10);
  CHECK_RC(circuit_clock_advance(manual, UINT64_MAX), CIRCUIT_RESULT_OK); /* saturates */
  CHECK_RC(circuit_clock_now(manual, &t), CIRCUIT_RESULT_OK);
  CHECK(t == UINT64_MAX);
  CHECK_RC(circuit_clock_set(manual, 0), CIRCUIT_RESULT_OK);

  CHECK_RC(circuit_clock_now(mono, &t), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_clock_now(mono, &t2), CIRCUIT_RESULT_OK);
  CHECK(t2 >= t);
  CHECK_RC(circuit_clock_advance(mono, 1), CIRCUIT_RESULT_INVALID_ARGUMENT);
  CHECK_ERR_MENTIONS("monotonic");
  CHECK_RC(circuit_clock_set(mono, 1), CIRCUIT_RESULT_INVALID_ARGUMENT);

  /* A breaker keeps its time source after the clock handle is freed. */
  b = make_breaker(cfg, manual);
  circuit_clock_free(manual);
  p = admit(b);
  CHECK_RC(circuit_breaker_record(b, p, CIRCUIT_OUTCOME_FAILURE, 1), CIRCUIT_RESULT_OK);
  CHECK(state_of(b) == CIRCUIT_STATE_OPEN);
  CHECK(refuse(b, CIRCUIT_RESULT_REJECTED_OPEN) == SEC);

  circuit_breaker_free(b);
  circuit_config_free(cfg);
  circuit_clock_free(mono);
}

/* ---------- trip and recovery on simulated time ---------------------------- */

static void test_trip_and_recovery(void) {
  circuit_clock *clock = circuit_clock_manual_new(5 * SEC);
  circuit_config *cfg = make_config(3, SEC, 1);
  const circuit_breaker *b = make_breaker(cfg, clock);
  circuit_permit early, p, probe;
  circuit_metrics m;
  uint32_t g;
  int i;

  CHECK(state_of(b) == CIRCUIT_STATE_CLOSED);
  g = generation_of(b);
  early = admit(b); /* recorded only after the breaker has moved on */
  CHECK(early.generation == g && (early.flags & CIRCUIT_PERMIT_PROBE) == 0);

  /* Two failures and a success: the streak restarts. */
  for (i = 0; i < 2; i++) {
    p = admit(b);
    CHECK_RC(circuit_breaker_record(b, p, CIRCUIT_OUTCOME_FAILURE, MS), CIRCUIT_RESULT_OK);
  }
  p = admit(b);
  CHECK_RC(circuit_breaker_record(b, p, CIRCUIT_OUTCOME_SUCCESS, MS), CIRCUIT_RESULT_OK);
  CHECK(state_of(b) == CIRCUIT_STATE_CLOSED);

  /* Three in a row (TIMEOUT counts as a failure; IGNORED counts nowhere). */
  p = admit(b);
  CHECK_RC(circuit_breaker_record(b, p, CIRCUIT_OUTCOME_FAILURE, MS), CIRCUIT_RESULT_OK);
  p = admit(b);
  CHECK_RC(circuit_breaker_record(b, p, CIRCUIT_OUTCOME_IGNORED, MS), CIRCUIT_RESULT_OK);
  p = admit(b);
  CHECK_RC(circuit_breaker_record(b, p, CIRCUIT_OUTCOME_TIMEOUT, MS), CIRCUIT_RESULT_OK);
  CHECK(state_of(b) == CIRCUIT_STATE_CLOSED);
  p = admit(b);
  CHECK_RC(circuit_breaker_record(b, p, CIRCUIT_OUTCOME_FAILURE, MS), CIRCUIT_RESULT_OK);
  CHECK(state_of(b) == CIRCUIT_STATE_OPEN);
  CHECK(generation_of(b) == g + 1);

  /* OPEN: refused, with the time left. */
  CHECK(refuse(b, CIRCUIT_RESULT_REJECTED_OPEN) == SEC);
  CHECK_RC(circuit_clock_advance(clock, 400 * MS), CIRCUIT_RESULT_OK);
  CHECK(refuse(b, CIRCUIT_RESULT_REJECTED_OPEN) == 600 * MS);
  CHECK_RC(circuit_clock_advance(clock, 600 * MS), CIRCUIT_RESULT_OK);

  /* Deadline passed: the next acquire is the one probe. */
  probe = admit(b);
  CHECK((probe.flags & CIRCUIT_PERMIT_PROBE) != 0);
  CHECK(state_of(b) == CIRCUIT_STATE_HALF_OPEN);
  CHECK(refuse(b, CIRCUIT_RESULT_REJECTED_HALF_OPEN_FULL) != CIRCUIT_RETRY_AFTER_UNKNOWN);

  /* The probe fails: OPEN again, for twice as long (backoff). */
  CHECK_RC(circuit_breaker_record(b, probe, CIRCUIT_OUTCOME_FAILURE, MS), CIRCUIT_RESULT_OK);
  CHECK(state_of(b) == CIRCUIT_STATE_OPEN);
  CHECK(refuse(b, CIRCUIT_RESULT_REJECTED_OPEN) == 2 * SEC);
  CHECK_RC(circuit_clock_advance(clock, 2 * SEC), CIRCUIT_RESULT_OK);

  /* The next probe succeeds: CLOSED. */
  probe = admit(b);
  CHECK((probe.flags & CIRCUIT_PERMIT_PROBE) != 0);
  CHECK_RC(circuit_breaker_record(b, probe, CIRCUIT_OUTCOME_SUCCESS, MS), CIRCUIT_RESULT_OK);
  CHECK(state_of(b) == CIRCUIT_STATE_CLOSED);
  p = admit(b);
  CHECK_RC(circuit_breaker_record(b, p, CIRCUIT_OUTCOME_SUCCESS, MS), CIRCUIT_RESULT_OK);

  /* A permit of a finished generation is stale and changes nothing. */
  g = generation_of(b);
  CHECK_RC(circuit_breaker_record(b, early, CIRCUIT_OUTCOME_FAILURE, MS), CIRCUIT_RESULT_STALE);
  CHECK(generation_of(b) == g);
  /* A probe permit replayed is stale too. */
  CHECK_RC(circuit_breaker_record(b, probe, CIRCUIT_OUTCOME_FAILURE, MS), CIRCUIT_RESULT_STALE);
  CHECK(state_of(b) == CIRCUIT_STATE_CLOSED);

  m = metrics_of(b);
  CHECK(m.state == CIRCUIT_STATE_CLOSED && m.generation == g);
  CHECK(m.successes == 3 && m.failures == 5 && m.timeouts == 1 && m.ignored == 1);
  CHECK(m.stale == 2);
  CHECK(m.rejected_open == 3 && m.rejected_half_open_full == 1 && m.rejected_forced_open == 0);
  CHECK(m.transitions_to[CIRCUIT_STATE_OPEN] == 2);
  CHECK(m.transitions_to[CIRCUIT_STATE_HALF_OPEN] == 2);
  CHECK(m.transitions_to[CIRCUIT_STATE_CLOSED] == 1);
  CHECK(m.nanos_in_state[CIRCUIT_STATE_OPEN] == 3 * SEC);

  circuit_breaker_free(b);
  circuit_config_free(cfg);
  circuit_clock_free(clock);
}

/* Issue 13, item 3: a manual clock far from zero (wall-clock nanoseconds,
 * and the last hour of a uint64_t) keeps deadlines exact: a tripped breaker
 * refuses the next call, and a 1 s force-open is over a minute later. */
static void test_manual_clock_at_a_large_origin(void) {
  static const uint64_t origins[] = {1764990000123456789ull, (1ull << 48) * 1000ull,
                                     UINT64_MAX - 3600ull * SEC};
  size_t i;
  for (i = 0; i < sizeof origins / sizeof origins[0]; i++) {
    circuit_clock *clock = circuit_clock_manual_new(origins[i]);
    circuit_config *cfg = make_config(1, SEC, 1);
    const circuit_breaker *b = make_breaker(cfg, clock);
    circuit_permit p = admit(b), probe;
    CHECK_RC(circuit_breaker_record(b, p, CIRCUIT_OUTCOME_FAILURE, MS), CIRCUIT_RESULT_OK);
    CHECK(state_of(b) == CIRCUIT_STATE_OPEN);
    CHECK(refuse(b, CIRCUIT_RESULT_REJECTED_OPEN) == SEC);
    CHECK_RC(circuit_clock_advance(clock, SEC - 1), CIRCUIT_RESULT_OK);
    CHECK(refuse(b, CIRCUIT_RESULT_REJECTED_OPEN) == 1);
    CHECK_RC(circuit_clock_advance(clock, 1), CIRCUIT_RESULT_OK);
    probe = admit(b);
    CHECK((probe.flags & CIRCUIT_PERMIT_PROBE) != 0);
    CHECK_RC(circuit_breaker_record(b, probe, CIRCUIT_OUTCOME_SUCCESS, MS), CIRCUIT_RESULT_OK);
    CHECK(state_of(b) == CIRCUIT_STATE_CLOSED);

    CHECK_RC(circuit_breaker_force(b, CIRCUIT_OVERRIDE_FORCED_OPEN, SEC), CIRCUIT_RESULT_OK);
    CHECK(refuse(b, CIRCUIT_RESULT_REJECTED_FORCED_OPEN) == SEC);
    CHECK_RC(circuit_clock_advance(clock, 60 * SEC), CIRCUIT_RESULT_OK);
    CHECK(state_of(b) == CIRCUIT_STATE_CLOSED);
    p = admit(b);
    CHECK_RC(circuit_breaker_record(b, p, CIRCUIT_OUTCOME_SUCCESS, MS), CIRCUIT_RESULT_OK);

    circuit_breaker_free(b);
    circuit_config_free(cfg);
    circuit_clock_free(clock);
  }
}

/* Issue 13, item 4: a half-open probe recorded three times counts once
 * (B5: three successes are three probes), and a probe of another breaker
 * with the same generation changes nothing. */
static void test_probe_recorded_twice_is_stale(void) {
  circuit_clock *clock = circuit_clock_manual_new(5 * SEC);
  circuit_config *cfg = make_config(1, SEC, 3);
  const circuit_breaker *a = make_breaker(cfg, clock), *b = make_breaker(cfg, clock);
  circuit_permit p, probe, foreign, p2, p3;
  circuit_metrics m;

  p = admit(a);
  CHECK_RC(circuit_breaker_record(a, p, CIRCUIT_OUTCOME_FAILURE, MS), CIRCUIT_RESULT_OK);
  p = admit(b);
  CHECK_RC(circuit_breaker_record(b, p, CIRCUIT_OUTCOME_FAILURE, MS), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_clock_advance(clock, SEC), CIRCUIT_RESULT_OK);
  foreign = admit(a);
  probe = admit(b);
  CHECK(foreign.generation == probe.generation);
  CHECK((probe.flags & CIRCUIT_PERMIT_PROBE) != 0);
  CHECK_RC(circuit_breaker_record(b, probe, CIRCUIT_OUTCOME_SUCCESS, MS), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_breaker_record(b, probe, CIRCUIT_OUTCOME_SUCCESS, MS), CIRCUIT_RESULT_STALE);
  CHECK_RC(circuit_breaker_record_parts(b, probe.generation, probe.flags, CIRCUIT_OUTCOME_SUCCESS, MS),
           CIRCUIT_RESULT_STALE);
  CHECK_RC(circuit_breaker_record(b, foreign, CIRCUIT_OUTCOME_SUCCESS, MS), CIRCUIT_RESULT_STALE);
  CHECK_RC(circuit_breaker_record(b, foreign, CIRCUIT_OUTCOME_FAILURE, MS), CIRCUIT_RESULT_STALE);
  CHECK(state_of(b) == CIRCUIT_STATE_HALF_OPEN);
  p2 = admit(b);
  p3 = admit(b);
  CHECK_RC(circuit_breaker_record(b, p2, CIRCUIT_OUTCOME_SUCCESS, MS), CIRCUIT_RESULT_OK);
  CHECK(state_of(b) == CIRCUIT_STATE_HALF_OPEN);
  CHECK_RC(circuit_breaker_record(b, p3, CIRCUIT_OUTCOME_SUCCESS, MS), CIRCUIT_RESULT_OK);
  CHECK(state_of(b) == CIRCUIT_STATE_CLOSED);
  m = metrics_of(b);
  CHECK(m.stale == 4 && m.successes == 3);
  CHECK_RC(circuit_breaker_record(a, foreign, CIRCUIT_OUTCOME_FAILURE, MS), CIRCUIT_RESULT_OK);
  CHECK(state_of(a) == CIRCUIT_STATE_OPEN);

  circuit_breaker_free(a);
  circuit_breaker_free(b);
  circuit_config_free(cfg);
  circuit_clock_free(clock);
}

static void test_retry_after(void) {
  circuit_clock *clock = circuit_clock_manual_new(0);
  circuit_config *cfg = make_config(1, SEC, 1);
  const circuit_breaker *b = make_breaker(cfg, clock);
  circuit_permit p;

  /* The dependency's own Retry-After sets the open duration... */
  p = admit(b);
  CHECK_RC(circuit_breaker_record_retry_after(b, p, CIRCUIT_OUTCOME_FAILURE, MS, 7 * SEC),
           CIRCUIT_RESULT_OK);
  CHECK(refuse(b, CIRCUIT_RESULT_REJECTED_OPEN) == 7 * SEC);
  /* ...clamped to the maximum open duration (10 s here). */
  CHECK_RC(circuit_breaker_reset(b), CIRCUIT_RESULT_OK);
  p = admit(b);
  CHECK_RC(circuit_breaker_record_retry_after(b, p, CIRCUIT_OUTCOME_FAILURE, MS, UINT64_MAX),
           CIRCUIT_RESULT_OK);
  CHECK(refuse(b, CIRCUIT_RESULT_REJECTED_OPEN) == 10 * SEC);

  circuit_breaker_free(b);
  circuit_config_free(cfg);
  circuit_clock_free(clock);
}

/* ---------- HTTP rules: status classification, Retry-After ----------------- */

static uint32_t http_outcome(uint32_t status) {
  uint32_t out = 99;
  CHECK_RC(circuit_http_outcome(status, &out), CIRCUIT_RESULT_OK);
  return out;
}

static void test_http_rules(void) {
  CHECK(http_outcome(200) == CIRCUIT_OUTCOME_SUCCESS);
  CHECK(http_outcome(204) == CIRCUIT_OUTCOME_SUCCESS);
  CHECK(http_outcome(302) == CIRCUIT_OUTCOME_SUCCESS);
  CHECK(http_outcome(404) == CIRCUIT_OUTCOME_IGNORED);
  CHECK(http_outcome(429) == CIRCUIT_OUTCOME_FAILURE);
  CHECK(http_outcome(503) == CIRCUIT_OUTCOME_FAILURE);
  CHECK(http_outcome(0) == CIRCUIT_OUTCOME_FAILURE);
  CHECK(http_outcome(600) == CIRCUIT_OUTCOME_FAILURE);
  CHECK(http_outcome(UINT32_MAX) == CIRCUIT_OUTCOME_FAILURE);
  CHECK_RC(circuit_http_outcome(200, NULL), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK_ERR_MENTIONS("out_outcome");

  /* 1994-11-06 08:49:37 UTC, in nanoseconds since the epoch. */
  const uint64_t now = UINT64_C(784111777) * SEC;
  uint64_t delay = 0;
  CHECK_RC(circuit_http_retry_after("7", 1, now, &delay), CIRCUIT_RESULT_OK);
  CHECK(delay == 7 * SEC);
  /* Not NUL-terminated: only `value_len` bytes are read. */
  CHECK_RC(circuit_http_retry_after(" 12 junk", 3, now, &delay), CIRCUIT_RESULT_OK);
  CHECK(delay == 12 * SEC);
  static const char date[] = "Sun, 06 Nov 1994 08:49:46 GMT";
  CHECK_RC(circuit_http_retry_after(date, sizeof date - 1, now, &delay), CIRCUIT_RESULT_OK);
  CHECK(delay == 9 * SEC);
  CHECK_RC(circuit_http_retry_after(date, sizeof date - 1, now + 20 * SEC, &delay),
           CIRCUIT_RESULT_OK);
  CHECK(delay == 0);
  CHECK_RC(circuit_http_retry_after("99999999999999999999999", 23, now, &delay),
           CIRCUIT_RESULT_OK);
  CHECK(delay == UINT64_MAX);

  /* No usable value: NOT_FOUND, a reason, and the output untouched. */
  static const char *const unusable[] = {"soon", "", "   ", "-7", "7.5", "\xff\xfe", "7\r\n",
                                         "Sun, 31 Feb 1994 08:49:46 GMT"};
  for (size_t i = 0; i < sizeof unusable / sizeof unusable[0]; i++) {
    delay = 4242;
    CHECK_RC(circuit_http_retry_after(unusable[i], strlen(unusable[i]), now, &delay),
             CIRCUIT_RESULT_NOT_FOUND);
    CHECK_ERR_MENTIONS("no usable delay");
    CHECK(delay == 4242);
  }
  char embedded_nul[] = {'1', '\0', '2'};
  CHECK_RC(circuit_http_retry_after(embedded_nul, sizeof embedded_nul, now, &delay),
           CIRCUIT_RESULT_NOT_FOUND);
  char overlong[CIRCUIT_HTTP_RETRY_AFTER_MAX_LEN + 1];
  memset(overlong, '7', sizeof overlong);
  CHECK_RC(circuit_http_retry_after(overlong, sizeof overlong, now, &delay),
           CIRCUIT_RESULT_NOT_FOUND);
  CHECK_ERR_MENTIONS("longer than");
  CHECK_RC(circuit_http_retry_after(overlong, sizeof overlong - 1, now, &delay),
           CIRCUIT_RESULT_OK);
  /* A huge length is refused by its length: no byte is read. */
  delay = 4242;
  CHECK_RC(circuit_http_retry_after("7", SIZE_MAX, now, &delay), CIRCUIT_RESULT_NOT_FOUND);
  CHECK(delay == 4242);
  CHECK_RC(circuit_http_retry_after(NULL, 0, now, &delay), CIRCUIT_RESULT_NOT_FOUND);
  CHECK_RC(circuit_http_retry_after(NULL, 5, now, &delay), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK_ERR_MENTIONS("value");
  CHECK_RC(circuit_http_retry_after("7", 1, now, NULL), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK_ERR_MENTIONS("out_delay_ns");
  CHECK(delay == 4242);
  CHECK_RC(circuit_http_retry_after("3", 1, UINT64_MAX, &delay), CIRCUIT_RESULT_OK);
  CHECK(delay == 3 * SEC);

  /* End to end: the parsed delay is the open duration, clamped (10 s). */
  circuit_clock *clock = circuit_clock_manual_new(0);
  circuit_config *cfg = make_config(1, SEC, 1);
  const circuit_breaker *b = make_breaker(cfg, clock);
  CHECK_RC(circuit_http_retry_after("7", 1, now, &delay), CIRCUIT_RESULT_OK);
  circuit_permit p = admit(b);
  uint32_t outcome = http_outcome(429);
  CHECK_RC(circuit_breaker_record_retry_after(b, p, outcome, MS, delay), CIRCUIT_RESULT_OK);
  CHECK(refuse(b, CIRCUIT_RESULT_REJECTED_OPEN) == 7 * SEC);
  CHECK_RC(circuit_breaker_reset(b), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_http_retry_after("99999999", 8, now, &delay), CIRCUIT_RESULT_OK);
  p = admit(b);
  CHECK_RC(circuit_breaker_record_retry_after(b, p, http_outcome(503), MS, delay),
           CIRCUIT_RESULT_OK);
  CHECK(refuse(b, CIRCUIT_RESULT_REJECTED_OPEN) == 10 * SEC);
  circuit_breaker_free(b);
  circuit_config_free(cfg);
  circuit_clock_free(clock);
}

/* ---------- overrides ------------------------------------------------------ */

static void test_overrides(void) {
  circuit_clock *clock = circuit_clock_manual_new(0);
  circuit_config *cfg = make_config(2, SEC, 1);
  const circuit_breaker *b = make_breaker(cfg, clock);
  circuit_permit p, before;
  circuit_metrics m;
  uint32_t g = generation_of(b);
  int i;

  CHECK_RC(circuit_breaker_clear_override(b), CIRCUIT_RESULT_NOT_FOUND);
  CHECK_ERR_MENTIONS("override");

  before = admit(b);
  CHECK_RC(circuit_breaker_force(b, CIRCUIT_OVERRIDE_FORCED_OPEN, 0), CIRCUIT_RESULT_OK);
  CHECK(state_of(b) == CIRCUIT_STATE_FORCED_OPEN && generation_of(b) == g + 1);
  CHECK(refuse(b, CIRCUIT_RESULT_REJECTED_FORCED_OPEN) == CIRCUIT_RETRY_AFTER_UNKNOWN);
  CHECK_RC(circuit_breaker_record(b, before, CIRCUIT_OUTCOME_SUCCESS, 1), CIRCUIT_RESULT_STALE);
  CHECK_RC(circuit_breaker_clear_override(b), CIRCUIT_RESULT_OK);
  CHECK(state_of(b) == CIRCUIT_STATE_CLOSED);

  /* With an expiry: the override ends by itself, even without traffic. */
  CHECK_RC(circuit_breaker_force(b, CIRCUIT_OVERRIDE_FORCED_OPEN, 5 * SEC), CIRCUIT_RESULT_OK);
  CHECK(refuse(b, CIRCUIT_RESULT_REJECTED_FORCED_OPEN) == 5 * SEC);
  CHECK_RC(circuit_clock_advance(clock, 5 * SEC), CIRCUIT_RESULT_OK);
  CHECK(state_of(b) == CIRCUIT_STATE_CLOSED);

  /* FORCED_CLOSED: admits and counts, never trips. */
  CHECK_RC(circuit_breaker_force(b, CIRCUIT_OVERRIDE_FORCED_CLOSED, 0), CIRCUIT_RESULT_OK);
  for (i = 0; i < 10; i++) {
    p = admit(b);
    CHECK_RC(circuit_breaker_record(b, p, CIRCUIT_OUTCOME_FAILURE, 1), CIRCUIT_RESULT_OK);
  }
  CHECK(state_of(b) == CIRCUIT_STATE_FORCED_CLOSED);
  m = metrics_of(b);
  CHECK(m.failures == 10);

  /* DISABLED: admits, records nothing. */
  CHECK_RC(circuit_breaker_force(b, CIRCUIT_OVERRIDE_DISABLED, 0), CIRCUIT_RESULT_OK);
  for (i = 0; i < 10; i++) {
    p = admit(b);
    CHECK_RC(circuit_breaker_record(b, p, CIRCUIT_OUTCOME_FAILURE, 1), CIRCUIT_RESULT_OK);
  }
  CHECK(state_of(b) == CIRCUIT_STATE_DISABLED);
  m = metrics_of(b);
  CHECK(m.failures == 10);

  /* METRICS_ONLY: evaluates trips, never opens. */
  CHECK_RC(circuit_breaker_force(b, CIRCUIT_OVERRIDE_METRICS_ONLY, 0), CIRCUIT_RESULT_OK);
  for (i = 0; i < 10; i++) {
    p = admit(b);
    CHECK_RC(circuit_breaker_record(b, p, CIRCUIT_OUTCOME_FAILURE, 1), CIRCUIT_RESULT_OK);
  }
  CHECK(state_of(b) == CIRCUIT_STATE_METRICS_ONLY);

  /* Reset: CLOSED with an empty window, override gone. */
  CHECK_RC(circuit_breaker_reset(b), CIRCUIT_RESULT_OK);
  CHECK(state_of(b) == CIRCUIT_STATE_CLOSED);
  CHECK_RC(circuit_breaker_clear_override(b), CIRCUIT_RESULT_NOT_FOUND);
  p = admit(b);
  CHECK_RC(circuit_breaker_record(b, p, CIRCUIT_OUTCOME_FAILURE, 1), CIRCUIT_RESULT_OK);
  CHECK(state_of(b) == CIRCUIT_STATE_CLOSED); /* one failure of two */

  /* Durations beyond a week are clamped, not refused. */
  CHECK_RC(circuit_breaker_force(b, CIRCUIT_OVERRIDE_FORCED_OPEN, UINT64_MAX), CIRCUIT_RESULT_OK);
  CHECK(refuse(b, CIRCUIT_RESULT_REJECTED_FORCED_OPEN) == 7ull * 24 * 3600 * SEC);

  circuit_breaker_free(b);
  circuit_config_free(cfg);
  circuit_clock_free(clock);
}

/* ---------- reference counting ------------------------------------------- */

static void *use_and_release(void *arg) {
  const circuit_breaker *b = (const circuit_breaker *)arg;
  circuit_permit p;
  int i;
  for (i = 0; i < 1000; i++) {
    if (circuit_breaker_acquire(b, &p, NULL) == CIRCUIT_RESULT_OK) {
      circuit_breaker_record(b, p, CIRCUIT_OUTCOME_SUCCESS, 1);
    }
  }
  circuit_breaker_free(b); /* this thread's reference */
  return NULL;
}

static void test_refcount(void) {
  circuit_config *cfg = make_config(5, SEC, 1);
  const circuit_breaker *b = make_breaker(cfg, NULL);
  const circuit_breaker *again;
  pthread_t threads[3];
  circuit_metrics m;
  int i;

  circuit_config_free(cfg);
  again = circuit_breaker_retain(b);
  CHECK(again == b);
  circuit_breaker_free(again);

  for (i = 0; i < 3; i++) {
    CHECK(pthread_create(&threads[i], NULL, use_and_release,
                         (void *)circuit_breaker_retain(b)) == 0);
  }
  for (i = 0; i < 3; i++) CHECK(pthread_join(threads[i], NULL) == 0);
  m = metrics_of(b);
  CHECK(m.successes == 3000);
  circuit_breaker_free(b); /* the last reference: LeakSanitizer checks it is gone */

  /* The creator may release first; the other holder keeps it alive. */
  cfg = make_config(5, SEC, 1);
  b = make_breaker(cfg, NULL);
  circuit_config_free(cfg);
  again = circuit_breaker_retain(b);
  circuit_breaker_free(b);
  CHECK(state_of(again) == CIRCUIT_STATE_CLOSED);
  circuit_breaker_free(again);
}

/* circuit_breaker_record's success copy keeps the duration: slow successes
 * count and trip the slow-call rate; circuit_breaker_record_success (no
 * duration) is never slow. */
static void test_success_durations(void) {
  circuit_clock *clock = circuit_clock_manual_new(SEC);
  circuit_config_builder *cb = circuit_config_builder_new();
  circuit_config *cfg = NULL;
  const circuit_breaker *b;
  circuit_permit p;
  circuit_metrics m;
  int i;

  CHECK_RC(circuit_config_builder_set_consecutive_failures(cb, 0), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_config_builder_set_count_window(cb, 4), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_config_builder_set_minimum_calls(cb, 4), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_config_builder_set_slow_call(cb, 0.5, 100 * MS), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_config_builder_build(cb, &cfg), CIRCUIT_RESULT_OK);
  circuit_config_builder_free(cb);
  b = make_breaker(cfg, clock);
  circuit_config_free(cfg);

  for (i = 0; i < 2; i++) {
    p = admit(b);
    CHECK_RC(circuit_breaker_record_success(b, p.generation), CIRCUIT_RESULT_OK);
  }
  p = admit(b);
  CHECK_RC(circuit_breaker_record(b, p, CIRCUIT_OUTCOME_SUCCESS, 100 * MS - 1), CIRCUIT_RESULT_OK);
  m = metrics_of(b);
  CHECK(m.successes == 3 && m.slow == 0 && m.state == CIRCUIT_STATE_CLOSED);
  /* Half the window slow: the rate reaches 0.5 and the breaker opens. */
  p = admit(b);
  CHECK_RC(circuit_breaker_record(b, p, CIRCUIT_OUTCOME_SUCCESS, UINT64_MAX), CIRCUIT_RESULT_OK);
  m = metrics_of(b);
  CHECK(m.successes == 4 && m.slow == 1 && m.state == CIRCUIT_STATE_CLOSED);
  p = admit(b);
  CHECK_RC(circuit_breaker_record(b, p, CIRCUIT_OUTCOME_SUCCESS, 100 * MS), CIRCUIT_RESULT_OK);
  m = metrics_of(b);
  CHECK(m.successes == 5 && m.slow == 2 && m.failures == 0);
  CHECK(m.state == CIRCUIT_STATE_OPEN);

  circuit_breaker_free(b);
  circuit_clock_free(clock);
}

/* ---------- the header's inline closed fast path -------------------------- */

/* One step of the lockstep below: circuit_fast_acquire on `fb` and
 * circuit_breaker_acquire on `lib`, two breakers made alike on one clock,
 * must answer alike (result, permit, retry-after). The permit fields start
 * as garbage, so a permit left unwritten shows. */
static circuit_result twin_acquire(const circuit_fast_breaker *fb, const circuit_breaker *lib,
                                   circuit_permit *fp, circuit_permit *lp) {
  uint64_t fr = 777, lr = 777;
  circuit_result got, want;
  fp->generation = lp->generation = 0xdeadbeef;
  fp->flags = lp->flags = 0xdeadbeef;
  got = circuit_fast_acquire(fb, fp, &fr);
  want = circuit_breaker_acquire(lib, lp, &lr);
  CHECK_RC(got, want);
  if (got == CIRCUIT_RESULT_OK) {
    /* A probe's flags also carry its breaker's tag: the two differ there. */
    CHECK(fp->generation == lp->generation);
    CHECK((fp->flags & CIRCUIT_PERMIT_PROBE) != 0 ? (lp->flags & CIRCUIT_PERMIT_PROBE) != 0
                                                  : fp->flags == lp->flags);
  } else {
    CHECK(fr == lr);
  }
  return got;
}

/* circuit_fast_record_success on one, circuit_breaker_record(SUCCESS, 0) on
 * the other: the same answer. */
static circuit_result twin_success(const circuit_fast_breaker *fb, const circuit_breaker *lib,
                                   circuit_permit fp, circuit_permit lp) {
  circuit_result got = circuit_fast_record_success(fb, fp);
  CHECK_RC(got, circuit_breaker_record(lib, lp, CIRCUIT_OUTCOME_SUCCESS, 0));
  return got;
}

static int fast_word_admits(const circuit_fast_breaker *fb) {
  return (__atomic_load_n(fb->state_word, __ATOMIC_ACQUIRE) & CIRCUIT_WORD_FAST_MASK) == 0;
}

/* The inline helpers answer exactly as the library: a breaker driven
 * through them and a twin driven through circuit_breaker_acquire /
 * circuit_breaker_record, in lockstep on one manual clock, through CLOSED,
 * a stale permit, OPEN, HALF_OPEN, ramp-up and every override, give the
 * same answers and end with the same counters. */
static void test_fast_path(void) {
  circuit_clock *clock = circuit_clock_manual_new(5 * SEC);
  circuit_config_builder *cb = circuit_config_builder_new();
  circuit_config *cfg = NULL;
  const circuit_breaker *fast_b, *lib;
  circuit_fast_breaker fb, unset;
  circuit_permit fp, lp, old_fp, old_lp;
  circuit_metrics fm, lm;
  uint32_t admitted = 0, refused = 0;
  uint64_t retry = 0;
  int i, k;
  static const uint32_t modes[] = {CIRCUIT_OVERRIDE_FORCED_OPEN, CIRCUIT_OVERRIDE_FORCED_CLOSED,
                                   CIRCUIT_OVERRIDE_DISABLED, CIRCUIT_OVERRIDE_METRICS_ONLY};

  CHECK_RC(circuit_config_builder_set_consecutive_failures(cb, 1), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_config_builder_set_jitter(cb, 0.0), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_config_builder_set_seed(cb, 42), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_config_builder_set_open_duration(cb, SEC), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_config_builder_set_half_open_probes(cb, 1), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_config_builder_set_ramp(cb, 0.25, SEC, 0), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_config_builder_build(cb, &cfg), CIRCUIT_RESULT_OK);
  circuit_config_builder_free(cb);
  fast_b = make_breaker(cfg, clock);
  lib = make_breaker(cfg, clock);
  circuit_config_free(cfg);

  /* NULLs: refused with the library's answer, never a crash. */
  CHECK_RC(circuit_fast_init(NULL, fast_b), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK_RC(circuit_fast_init(&unset, NULL), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK(unset.breaker == NULL && unset.state_word == NULL);
  CHECK_RC(circuit_fast_acquire(&unset, &fp, NULL), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK_RC(circuit_fast_acquire(NULL, &fp, NULL), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK_RC(circuit_fast_record_success(NULL, fp), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK_RC(circuit_fast_init(&fb, fast_b), CIRCUIT_RESULT_OK);
  CHECK(fb.breaker == fast_b && fb.state_word != NULL);
  CHECK_RC(circuit_fast_acquire(&fb, NULL, NULL), CIRCUIT_RESULT_NULL_ARGUMENT);

  /* CLOSED: admitted inline, with the permit the library gives. */
  CHECK(fast_word_admits(&fb));
  for (i = 0; i < 100; i++) {
    CHECK_RC(twin_acquire(&fb, lib, &fp, &lp), CIRCUIT_RESULT_OK);
    CHECK(fp.flags == 0 && fp.generation == generation_of(fast_b));
    CHECK_RC(twin_success(&fb, lib, fp, lp), CIRCUIT_RESULT_OK);
  }
  CHECK(metrics_of(fast_b).successes == 100);

  /* A permit taken inline, then a transition: its success is stale. */
  CHECK_RC(twin_acquire(&fb, lib, &old_fp, &old_lp), CIRCUIT_RESULT_OK);
  CHECK_RC(twin_acquire(&fb, lib, &fp, &lp), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_breaker_record(fast_b, fp, CIRCUIT_OUTCOME_FAILURE, MS), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_breaker_record(lib, lp, CIRCUIT_OUTCOME_FAILURE, MS), CIRCUIT_RESULT_OK);
  CHECK(state_of(fast_b) == CIRCUIT_STATE_OPEN && !fast_word_admits(&fb));
  CHECK_RC(twin_success(&fb, lib, old_fp, old_lp), CIRCUIT_RESULT_STALE);
  CHECK(metrics_of(fast_b).stale == 1);

  /* OPEN: the library's rejection, with its retry-after. */
  CHECK_RC(twin_acquire(&fb, lib, &fp, &lp), CIRCUIT_RESULT_REJECTED_OPEN);
  CHECK_RC(circuit_fast_acquire(&fb, &fp, &retry), CIRCUIT_RESULT_REJECTED_OPEN);
  CHECK(retry == SEC);
  CHECK_RC(circuit_breaker_acquire(lib, &lp, &retry), CIRCUIT_RESULT_REJECTED_OPEN);

  /* HALF_OPEN: one probe (flags set), then full; the probe's success
   * goes through circuit_breaker_record and closes the breaker. */
  CHECK_RC(circuit_clock_advance(clock, SEC), CIRCUIT_RESULT_OK);
  CHECK_RC(twin_acquire(&fb, lib, &fp, &lp), CIRCUIT_RESULT_OK);
  CHECK((fp.flags & CIRCUIT_PERMIT_PROBE) != 0);
  CHECK_RC(twin_acquire(&fb, lib, &old_fp, &old_lp), CIRCUIT_RESULT_REJECTED_HALF_OPEN_FULL);
  CHECK_RC(twin_success(&fb, lib, fp, lp), CIRCUIT_RESULT_OK);
  CHECK(state_of(fast_b) == CIRCUIT_STATE_CLOSED && state_of(lib) == CIRCUIT_STATE_CLOSED);

  /* Ramp-up: CLOSED, but not on the fast path; a quarter admitted. */
  CHECK(!fast_word_admits(&fb));
  for (i = 0; i < 400; i++) {
    switch (twin_acquire(&fb, lib, &fp, &lp)) {
      case CIRCUIT_RESULT_OK:
        admitted++;
        CHECK_RC(twin_success(&fb, lib, fp, lp), CIRCUIT_RESULT_OK);
        break;
      case CIRCUIT_RESULT_REJECTED_RAMP_LIMITED: refused++; break;
      default: CHECK(0);
    }
  }
  CHECK(admitted >= 92 && admitted <= 108 && admitted + refused == 400);
  CHECK_RC(circuit_clock_advance(clock, SEC), CIRCUIT_RESULT_OK);
  CHECK_RC(twin_acquire(&fb, lib, &fp, &lp), CIRCUIT_RESULT_OK); /* ends the ramp */
  CHECK_RC(twin_success(&fb, lib, fp, lp), CIRCUIT_RESULT_OK);
  CHECK(fast_word_admits(&fb));

  /* Every override: never admitted inline; the library decides. */
  for (k = 0; k < 4; k++) {
    CHECK_RC(twin_acquire(&fb, lib, &old_fp, &old_lp), CIRCUIT_RESULT_OK);
    CHECK_RC(circuit_breaker_force(fast_b, modes[k], 0), CIRCUIT_RESULT_OK);
    CHECK_RC(circuit_breaker_force(lib, modes[k], 0), CIRCUIT_RESULT_OK);
    CHECK(!fast_word_admits(&fb));
    /* The permit from before the override is stale. */
    CHECK_RC(twin_success(&fb, lib, old_fp, old_lp), CIRCUIT_RESULT_STALE);
    for (i = 0; i < 3; i++) {
      if (twin_acquire(&fb, lib, &fp, &lp) == CIRCUIT_RESULT_OK) {
        CHECK(modes[k] != CIRCUIT_OVERRIDE_FORCED_OPEN);
        CHECK_RC(twin_success(&fb, lib, fp, lp), CIRCUIT_RESULT_OK);
      } else {
        CHECK(modes[k] == CIRCUIT_OVERRIDE_FORCED_OPEN);
      }
    }
    CHECK_RC(circuit_breaker_clear_override(fast_b), CIRCUIT_RESULT_OK);
    CHECK_RC(circuit_breaker_clear_override(lib), CIRCUIT_RESULT_OK);
    CHECK(fast_word_admits(&fb));
  }

  /* The same counters, exactly. */
  fm = metrics_of(fast_b);
  lm = metrics_of(lib);
  CHECK(fm.successes == lm.successes && fm.failures == lm.failures);
  CHECK(fm.stale == lm.stale && fm.stale == 5);
  CHECK(fm.rejected_open == lm.rejected_open && fm.rejected_open == 2);
  CHECK(fm.rejected_forced_open == lm.rejected_forced_open && fm.rejected_forced_open == 3);
  CHECK(fm.rejected_half_open_full == lm.rejected_half_open_full && fm.rejected_half_open_full == 1);
  CHECK(fm.rejected_ramp_limited == lm.rejected_ramp_limited && fm.rejected_ramp_limited == refused);
  CHECK(fm.generation == lm.generation && fm.state == lm.state);
  /* 100 closed + the probe + the ramp's + the one ending it + 3 under each
   * admitting override (DISABLED records nothing). */
  CHECK(fm.successes == 100 + 1 + admitted + 1 + 3 + 3);

  circuit_breaker_free(fast_b);
  circuit_breaker_free(lib);
  circuit_clock_free(clock);
}

/* ---------- stress: one breaker, four threads ---------------------------- */

#define STRESS_THREADS 4
#define STRESS_ITERATIONS 200000

typedef struct {
  const circuit_breaker *b;
  const circuit_clock *clock;
  uint64_t seed;
  /* Non-zero: acquire with circuit_fast_acquire, and record successes with
   * circuit_fast_record_success (the header's inline closed fast path). */
  int fast;
  circuit_fast_breaker fb;
  uint64_t attempts, admitted, rejected[3], acquire_other;
  uint64_t ok[4], stale[4], record_other;
} stress_worker;

static uint64_t xorshift(uint64_t *s) {
  uint64_t x = *s;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  *s = x;
  return x;
}

static void *stress_run(void *arg) {
  stress_worker *w = (stress_worker *)arg;
  uint64_t i;
  for (i = 0; i < STRESS_ITERATIONS; i++) {
    circuit_permit p;
    uint64_t retry;
    circuit_result rc;
    w->attempts++;
    rc = w->fast ? circuit_fast_acquire(&w->fb, &p, &retry) : circuit_breaker_acquire(w->b, &p, &retry);
    if (rc == CIRCUIT_RESULT_OK) {
      uint64_t r = xorshift(&w->seed) % 100;
      uint32_t outcome = r < 60 ? CIRCUIT_OUTCOME_SUCCESS
                         : r < 90 ? CIRCUIT_OUTCOME_FAILURE
                         : r < 95 ? CIRCUIT_OUTCOME_TIMEOUT
                                  : CIRCUIT_OUTCOME_IGNORED;
      w->admitted++;
      /* Hold some permits across a reschedule, so that other threads
       * trip, probe and close meanwhile (on a busy 2-core machine threads
       * otherwise tend to run one whole time slice each). */
      if ((r & 7) == 0) sched_yield();
      rc = w->fast && outcome == CIRCUIT_OUTCOME_SUCCESS ? circuit_fast_record_success(&w->fb, p)
                                                          : circuit_breaker_record(w->b, p, outcome, r * 1000);
      if (rc == CIRCUIT_RESULT_OK) {
        w->ok[outcome]++;
      } else if (rc == CIRCUIT_RESULT_STALE) {
        w->stale[outcome]++;
      } else {
        w->record_other++;
      }
    } else if (rc >= CIRCUIT_RESULT_REJECTED_OPEN && rc <= CIRCUIT_RESULT_REJECTED_HALF_OPEN_FULL) {
      w->rejected[rc - CIRCUIT_RESULT_REJECTED_OPEN]++;
    } else {
      w->acquire_other++;
    }
    /* Simulated time moves on: the breaker opens, half-opens and closes
     * many times during the run. */
    if ((i & 63) == 0) circuit_clock_advance(w->clock, 100000);
  }
  return NULL;
}

typedef struct {
  const circuit_breaker *b;
  int stop; /* __atomic builtins: shared by C and C++ */
  uint64_t operations;
} chaos_operator;

static void *chaos_run(void *arg) {
  chaos_operator *op = (chaos_operator *)arg;
  uint64_t seed = 0x9e3779b97f4a7c15ull;
  while (!__atomic_load_n(&op->stop, __ATOMIC_ACQUIRE)) {
    switch (xorshift(&seed) % 4) {
      case 0: circuit_breaker_force(op->b, CIRCUIT_OVERRIDE_FORCED_OPEN, 0); break;
      case 1: circuit_breaker_force(op->b, CIRCUIT_OVERRIDE_FORCED_CLOSED, 0); break;
      case 2: circuit_breaker_clear_override(op->b); break;
      default: circuit_breaker_reset(op->b); break;
    }
    op->operations++;
    {
      /* An operator acts now and then; the workers get most of the time. */
      struct timespec pause;
      pause.tv_sec = 0;
      pause.tv_nsec = 20000;
      nanosleep(&pause, NULL);
    }
  }
  return NULL;
}

/* Runs the workers (and optionally an operator thread flipping overrides)
 * and checks that every counter conserves. With `mixed`, every other worker
 * goes through the header's inline fast path (circuit_fast_*). */
static void stress(int with_operator, int mixed) {
  circuit_clock *clock = circuit_clock_manual_new(0);
  circuit_config_builder *cb = circuit_config_builder_new();
  circuit_config *cfg = NULL;
  const circuit_breaker *b;
  stress_worker w[STRESS_THREADS];
  pthread_t threads[STRESS_THREADS], op_thread;
  chaos_operator op;
  uint64_t attempts = 0, admitted = 0, rejected[3] = {0, 0, 0}, ok[4] = {0, 0, 0, 0};
  uint64_t stale[4] = {0, 0, 0, 0}, other = 0, stale_total = 0;
  circuit_metrics m;
  int i, k;

  /* One probe per half-open episode and a lease of a week (probes are
   * never freed by expiry during the run). */
  CHECK_RC(circuit_config_builder_set_consecutive_failures(cb, 5), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_config_builder_set_open_duration(cb, 1 * MS), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_config_builder_set_half_open_probes(cb, 1), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_config_builder_set_probe_lease(cb, 7ull * 24 * 3600 * SEC), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_config_builder_set_max_open_duration(cb, 4 * MS), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_config_builder_build(cb, &cfg), CIRCUIT_RESULT_OK);
  circuit_config_builder_free(cb);
  b = make_breaker(cfg, clock);
  circuit_config_free(cfg);

  memset(w, 0, sizeof w);
  for (i = 0; i < STRESS_THREADS; i++) {
    w[i].b = b;
    w[i].clock = clock;
    w[i].seed = 0x2545f4914f6cdd1dull * (uint64_t)(i + 1);
    w[i].fast = mixed && (i & 1) != 0;
    CHECK_RC(circuit_fast_init(&w[i].fb, b), CIRCUIT_RESULT_OK);
    CHECK(pthread_create(&threads[i], NULL, stress_run, &w[i]) == 0);
  }
  op.b = b;
  op.stop = 0;
  op.operations = 0;
  if (with_operator) CHECK(pthread_create(&op_thread, NULL, chaos_run, &op) == 0);
  for (i = 0; i < STRESS_THREADS; i++) CHECK(pthread_join(threads[i], NULL) == 0);
  if (with_operator) {
    __atomic_store_n(&op.stop, 1, __ATOMIC_RELEASE);
    CHECK(pthread_join(op_thread, NULL) == 0);
  }

  for (i = 0; i < STRESS_THREADS; i++) {
    attempts += w[i].attempts;
    admitted += w[i].admitted;
    for (k = 0; k < 3; k++) rejected[k] += w[i].rejected[k];
    for (k = 0; k < 4; k++) {
      ok[k] += w[i].ok[k];
      stale[k] += w[i].stale[k];
      stale_total += w[i].stale[k];
    }
    other += w[i].acquire_other + w[i].record_other;
  }
  if (with_operator) circuit_breaker_reset(b); /* leave any override */
  m = metrics_of(b);

  /* Host side: every acquire was admitted or rejected, every permit was
   * recorded once and counted or found stale. */
  CHECK(other == 0);
  CHECK(attempts == (uint64_t)STRESS_THREADS * STRESS_ITERATIONS);
  CHECK(admitted + rejected[0] + rejected[1] + rejected[2] == attempts);
  CHECK(ok[0] + ok[1] + ok[2] + ok[3] + stale_total == admitted);
  /* Library side agrees, counter by counter. */
  CHECK(m.rejected_open == rejected[0]);
  CHECK(m.rejected_forced_open == rejected[1]);
  CHECK(m.rejected_half_open_full == rejected[2]);
  CHECK(m.stale == stale_total);
  /* Every outcome the library answered OK for was counted under its
   * outcome, and only those (a report that loses to a transition is
   * counted as stale only). */
  CHECK(m.successes == ok[CIRCUIT_OUTCOME_SUCCESS]);
  CHECK(m.failures == ok[CIRCUIT_OUTCOME_FAILURE]);
  CHECK(m.timeouts == ok[CIRCUIT_OUTCOME_TIMEOUT]);
  CHECK(m.ignored == ok[CIRCUIT_OUTCOME_IGNORED]);
  CHECK(m.successes + m.failures + m.timeouts + m.ignored + m.stale == admitted);
  if (!with_operator) CHECK(rejected[1] == 0);
  if (with_operator) CHECK(op.operations > 0);
  if (!with_operator) {
    /* The breaker really tripped and recovered during the run. */
    CHECK(m.transitions_to[CIRCUIT_STATE_OPEN] > 0);
    CHECK(m.transitions_to[CIRCUIT_STATE_HALF_OPEN] > 0);
    CHECK(m.transitions_to[CIRCUIT_STATE_CLOSED] > 0);
    CHECK(rejected[0] > 0 && rejected[2] > 0 && stale_total > 0);
  }
  printf("stress%s%s: %llu attempts, %llu admitted, rejected %llu open + %llu forced + %llu "
         "half-open full, %llu stale, %llu opens, %llu operator actions\n",
         with_operator ? " with operator" : "", mixed ? " (half inline fast path)" : "",
         (unsigned long long)attempts,
         (unsigned long long)admitted, (unsigned long long)rejected[0],
         (unsigned long long)rejected[1], (unsigned long long)rejected[2],
         (unsigned long long)stale_total, (unsigned long long)m.transitions_to[CIRCUIT_STATE_OPEN],
         (unsigned long long)op.operations);

  circuit_breaker_free(b);
  circuit_clock_free(clock);
}

static void test_stress(void) {
  stress(0, 0);
  stress(1, 0);
  stress(0, 1);
  stress(1, 1);
}

/* ---------------------------------------------------------------------------- */

/* Ramp-up after recovery: after the probe closes the breaker, a rising
 * fraction of calls is admitted; the rest are REJECTED_RAMP_LIMITED with no
 * retry-after; after the ramp every call is admitted again. */
static void test_ramp_up(void) {
  circuit_clock *clock = circuit_clock_manual_new(5 * SEC);
  circuit_config_builder *cb = circuit_config_builder_new();
  circuit_config *cfg = NULL;
  const circuit_breaker *b;
  circuit_permit p;
  circuit_metrics m;
  uint64_t retry;
  uint32_t admitted = 0, refused = 0;
  int i;

  /* Bad ramps are refused by the core's rules, with the reason. */
  CHECK_RC(circuit_config_builder_set_ramp(cb, 1.0, SEC, 0), CIRCUIT_RESULT_INVALID_CONFIG);
  CHECK_ERR_MENTIONS("ramp: start 1 must be in (0, 1)");
  CHECK_RC(circuit_config_builder_set_ramp(cb, 0.5, SEC, CIRCUIT_RAMP_MAX_STEPS + 1),
           CIRCUIT_RESULT_INVALID_CONFIG);
  CHECK_RC(circuit_config_builder_set_ramp(cb, 0.5, CIRCUIT_RAMP_MIN_DURATION_NS - 1, 0),
           CIRCUIT_RESULT_INVALID_CONFIG);
  CHECK_RC(circuit_config_builder_set_consecutive_failures(cb, 1), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_config_builder_set_jitter(cb, 0.0), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_config_builder_set_open_duration(cb, SEC), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_config_builder_set_ramp(cb, 0.25, SEC, 0), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_config_builder_build(cb, &cfg), CIRCUIT_RESULT_OK);
  circuit_config_builder_free(cb);
  b = make_breaker(cfg, clock);

  p = admit(b);
  CHECK_RC(circuit_breaker_record(b, p, CIRCUIT_OUTCOME_FAILURE, MS), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_clock_advance(clock, SEC), CIRCUIT_RESULT_OK);
  p = admit(b);
  CHECK((p.flags & CIRCUIT_PERMIT_PROBE) != 0);
  CHECK_RC(circuit_breaker_record(b, p, CIRCUIT_OUTCOME_SUCCESS, MS), CIRCUIT_RESULT_OK);
  CHECK(state_of(b) == CIRCUIT_STATE_CLOSED);
  CHECK(metrics_of(b).ramp_fraction == 0.25);

  for (i = 0; i < 400; i++) {
    retry = 0;
    switch (circuit_breaker_acquire(b, &p, &retry)) {
      case CIRCUIT_RESULT_OK:
        admitted++;
        CHECK_RC(circuit_breaker_record(b, p, CIRCUIT_OUTCOME_SUCCESS, MS), CIRCUIT_RESULT_OK);
        break;
      case CIRCUIT_RESULT_REJECTED_RAMP_LIMITED:
        refused++;
        CHECK(retry == CIRCUIT_RETRY_AFTER_UNKNOWN);
        break;
      default:
        CHECK(0);
    }
  }
  CHECK(admitted >= 92 && admitted <= 108); /* a quarter, evenly spread */
  m = metrics_of(b);
  CHECK(m.rejected_ramp_limited == refused && m.successes == admitted + 1);

  CHECK_RC(circuit_clock_advance(clock, SEC), CIRCUIT_RESULT_OK);
  for (i = 0; i < 100; i++) {
    p = admit(b);
    CHECK_RC(circuit_breaker_record(b, p, CIRCUIT_OUTCOME_SUCCESS, MS), CIRCUIT_RESULT_OK);
  }
  CHECK(metrics_of(b).ramp_fraction == 0.0);

  circuit_breaker_free(b);
  circuit_config_free(cfg);
  circuit_clock_free(clock);
}

/* ---------- live reconfiguration ------------------------------------------ */

static circuit_config *window_config(uint32_t size, double rate, uint64_t histogram_ns) {
  circuit_config_builder *cb = circuit_config_builder_new();
  circuit_config *cfg = NULL;
  CHECK_RC(circuit_config_builder_set_consecutive_failures(cb, 0), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_config_builder_set_failure_rate(cb, rate), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_config_builder_set_minimum_calls(cb, 1), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_config_builder_set_count_window(cb, size), CIRCUIT_RESULT_OK);
  if (histogram_ns != 0) {
    CHECK_RC(circuit_config_builder_set_latency_histogram(cb, histogram_ns), CIRCUIT_RESULT_OK);
  }
  CHECK_RC(circuit_config_builder_build(cb, &cfg), CIRCUIT_RESULT_OK);
  circuit_config_builder_free(cb);
  return cfg;
}

static void test_reconfigure(void) {
  circuit_clock *clock = circuit_clock_manual_new(5 * SEC);
  circuit_config *ten = window_config(10, 0.9, 0);
  circuit_config *two = window_config(2, 0.5, 0);
  circuit_config *timed = window_config(2, 0.5, 10 * SEC);
  const circuit_breaker *b = make_breaker(ten, clock);
  const circuit_registry *r = NULL;
  const circuit_breaker *named = NULL;
  circuit_permit held, p;
  circuit_metrics m;
  uint32_t generation;
  int i;
  const uint32_t outcomes[4] = {CIRCUIT_OUTCOME_SUCCESS, CIRCUIT_OUTCOME_FAILURE,
                                CIRCUIT_OUTCOME_SUCCESS, CIRCUIT_OUTCOME_SUCCESS};

  for (i = 0; i < 4; i++) {
    p = admit(b);
    CHECK_RC(circuit_breaker_record(b, p, outcomes[i], MS), CIRCUIT_RESULT_OK);
  }
  CHECK(metrics_of(b).window_calls == 4);
  held = admit(b);
  generation = generation_of(b);

  /* A smaller window keeps the most recent outcomes: S, S. */
  CHECK_RC(circuit_breaker_reconfigure(b, two), CIRCUIT_RESULT_OK);
  m = metrics_of(b);
  CHECK(m.window_calls == 2 && m.failure_rate == 0.0);
  CHECK(generation_of(b) == generation && state_of(b) == CIRCUIT_STATE_CLOSED);
  CHECK(m.successes == 3 && m.failures == 1); /* counters kept */
  /* The permit taken before the change is still good, and the new
   * threshold applies: S then F is 1 of 2, at 0.5 it trips. */
  CHECK_RC(circuit_breaker_record(b, held, CIRCUIT_OUTCOME_FAILURE, MS), CIRCUIT_RESULT_OK);
  CHECK(state_of(b) == CIRCUIT_STATE_OPEN);

  /* A refused config changes nothing and says why. */
  CHECK_RC(circuit_breaker_reconfigure(b, timed), CIRCUIT_RESULT_INVALID_CONFIG);
  CHECK_ERR_MENTIONS("latency_histogram");
  CHECK(state_of(b) == CIRCUIT_STATE_OPEN && generation_of(b) == generation + 1);
  CHECK_RC(circuit_breaker_reconfigure(NULL, two), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK_RC(circuit_breaker_reconfigure(b, NULL), CIRCUIT_RESULT_NULL_ARGUMENT);

  /* Through a registry: the breaker of the name takes the new config. */
  CHECK_RC(circuit_registry_new(ten, 0, 0, clock, &r), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_registry_get_or_create(r, "db", 2, &named), CIRCUIT_RESULT_OK);
  for (i = 0; i < 3; i++) {
    p = admit(named);
    CHECK_RC(circuit_breaker_record(named, p, CIRCUIT_OUTCOME_SUCCESS, MS), CIRCUIT_RESULT_OK);
  }
  CHECK_RC(circuit_registry_reconfigure(r, "db", 2, two), CIRCUIT_RESULT_OK);
  CHECK(metrics_of(named).window_calls == 2);
  CHECK_RC(circuit_registry_reconfigure(r, "", 0, two), CIRCUIT_RESULT_INVALID_ARGUMENT);
  CHECK_RC(circuit_registry_reconfigure(r, "\xff", 1, two), CIRCUIT_RESULT_INVALID_UTF8);
  CHECK_RC(circuit_registry_reconfigure(r, "db", 2, timed), CIRCUIT_RESULT_INVALID_CONFIG);
  CHECK_RC(circuit_registry_reconfigure(r, "db", 2, NULL), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK(metrics_of(named).window_calls == 2);

  circuit_breaker_free(named);
  circuit_registry_free(r);
  circuit_breaker_free(b);
  circuit_config_free(ten);
  circuit_config_free(two);
  circuit_config_free(timed);
  circuit_clock_free(clock);
}

/* ---------- snapshot and restore ----------------------------------------- */

/* A snapshot taken through the required-length protocol (malloc'd). */
static unsigned char *snapshot_of(const circuit_breaker *b, size_t *len) {
  unsigned char *buf = NULL;
  size_t need = 0;
  CHECK_RC(circuit_breaker_snapshot(b, NULL, 0, &need), CIRCUIT_RESULT_BUFFER_TOO_SMALL);
  CHECK(need > 0);
  for (;;) {
    unsigned char *grown = (unsigned char *)realloc(buf, need);
    CHECK(grown != NULL);
    if (grown == NULL) break;
    buf = grown;
    *len = need;
    if (circuit_breaker_snapshot(b, buf, *len, &need) == CIRCUIT_RESULT_OK) break;
  }
  return buf;
}

static void test_snapshot_restore(void) {
  /* Wall-clock-like readings: a manual clock is the wall clock too. */
  const uint64_t wall = 1780000000ull * SEC;
  circuit_clock *old_clock = circuit_clock_manual_new(wall);
  circuit_clock *new_clock = circuit_clock_manual_new(wall + 3 * SEC);
  circuit_config *cfg = make_config(1, 8 * SEC, 1);
  circuit_config *other = make_config(2, 8 * SEC, 1);
  const circuit_breaker *a = make_breaker(cfg, old_clock);
  const circuit_breaker *b = make_breaker(cfg, new_clock);
  const circuit_breaker *c = make_breaker(other, new_clock);
  unsigned char *rec, *bad;
  unsigned char small[4];
  size_t len = 0, got = 0;
  uint32_t gen;

  CHECK_RC(circuit_breaker_record(a, admit(a), CIRCUIT_OUTCOME_FAILURE, MS), CIRCUIT_RESULT_OK);
  CHECK(state_of(a) == CIRCUIT_STATE_OPEN);
  rec = snapshot_of(a, &len);
  CHECK_RC(circuit_breaker_snapshot(a, small, sizeof small, &got),
           CIRCUIT_RESULT_BUFFER_TOO_SMALL);
  CHECK(got == len);
  CHECK_RC(circuit_breaker_snapshot(a, NULL, 8, &got), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK_RC(circuit_breaker_snapshot(NULL, small, sizeof small, &got),
           CIRCUIT_RESULT_NULL_ARGUMENT);

  /* Every refusal has its code and leaves the breaker as it was. */
  gen = generation_of(b);
  bad = (unsigned char *)malloc(len);
  CHECK(bad != NULL);
  CHECK_RC(circuit_breaker_restore(b, rec, len - 1), CIRCUIT_RESULT_SNAPSHOT_TRUNCATED);
  CHECK_ERR_MENTIONS("truncated");
  CHECK_RC(circuit_breaker_restore(b, NULL, 0), CIRCUIT_RESULT_SNAPSHOT_TRUNCATED);
  CHECK_RC(circuit_breaker_restore(b, NULL, len), CIRCUIT_RESULT_NULL_ARGUMENT);
  memcpy(bad, rec, len);
  bad[0] = 'X';
  CHECK_RC(circuit_breaker_restore(b, bad, len), CIRCUIT_RESULT_SNAPSHOT_FOREIGN);
  CHECK_ERR_MENTIONS("bad magic");
  memcpy(bad, rec, len);
  bad[8] = 7;
  CHECK_RC(circuit_breaker_restore(b, bad, len), CIRCUIT_RESULT_SNAPSHOT_VERSION);
  CHECK_ERR_MENTIONS("format version 7");
  memcpy(bad, rec, len);
  bad[48] ^= 1;
  CHECK_RC(circuit_breaker_restore(b, bad, len), CIRCUIT_RESULT_SNAPSHOT_CORRUPT);
  CHECK_ERR_MENTIONS("checksum");
  CHECK_RC(circuit_breaker_restore(c, rec, len), CIRCUIT_RESULT_SNAPSHOT_CONFIG_MISMATCH);
  CHECK_ERR_MENTIONS("another config");
  CHECK(state_of(b) == CIRCUIT_STATE_CLOSED && generation_of(b) == gen);
  CHECK(state_of(c) == CIRCUIT_STATE_CLOSED);

  /* Restored 3 s (of wall clock) later: open for the 5 s left. */
  CHECK_RC(circuit_breaker_restore(b, rec, len), CIRCUIT_RESULT_OK);
  CHECK(state_of(b) == CIRCUIT_STATE_OPEN);
  CHECK(refuse(b, CIRCUIT_RESULT_REJECTED_OPEN) == 5 * SEC);
  CHECK_RC(circuit_clock_advance(new_clock, 5 * SEC), CIRCUIT_RESULT_OK);
  CHECK((admit(b).flags & CIRCUIT_PERMIT_PROBE) != 0);

  free(bad);
  free(rec);
  circuit_breaker_free(a);
  circuit_breaker_free(b);
  circuit_breaker_free(c);
  circuit_config_free(cfg);
  circuit_config_free(other);
  circuit_clock_free(old_clock);
  circuit_clock_free(new_clock);
}

int main(void) {
  test_versions();
  test_result_names();
  test_last_error();
  test_null_arguments();
  test_garbage_enums();
  test_strings();
  test_struct_sizes();
  test_config();
  test_config_errors_match_every_host();
  test_needs_durations();
  test_clocks();
  test_trip_and_recovery();
  test_ramp_up();
  test_reconfigure();
  test_snapshot_restore();
  test_manual_clock_at_a_large_origin();
  test_probe_recorded_twice_is_stale();
  test_retry_after();
  test_http_rules();
  test_overrides();
  test_success_durations();
  test_fast_path();
  test_refcount();
  test_stress();
  return check_summary();
}
