/* Host-shared segments through the C ABI (issue 17): errors for every kind
 * of refused file, and real processes (fork) driving one breaker: every
 * call counted exactly once, a trip seen by every process, workers
 * SIGKILLed in the middle of a run without a count lost, a probe held by a
 * SIGKILLed process reclaimed by the lease, 8 workers sparing a failing
 * partner with one shared breaker, and registries on a segment in two
 * processes. */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"

#define WORKERS 4
#define CALLS_PER_WORKER 50000

static char dir[256];

static circuit_config *consecutive(uint32_t n) {
  circuit_config_builder *b = circuit_config_builder_new();
  circuit_config *c = NULL;
  CHECK_RC(circuit_config_builder_set_consecutive_failures(b, n), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_config_builder_build(b, &c), CIRCUIT_RESULT_OK);
  circuit_config_builder_free(b);
  return c;
}

static circuit_result open_at(const char *path, const circuit_config *c, const circuit_segment **out) {
  return circuit_segment_open(path, strlen(path), c, 8, 8, 0, out);
}

static void path_of(char *buf, size_t len, const char *file) {
  snprintf(buf, len, "%s/%s", dir, file);
}

static void test_refusals(void) {
  circuit_config *c = consecutive(5);
  circuit_config *other = consecutive(6);
  const circuit_segment *s = NULL;
  const circuit_breaker *b = NULL;
  char path[300], link_path[300], junk[300];
  FILE *f;

  path_of(path, sizeof path, "seg");
  CHECK_RC(open_at(path, c, &s), CIRCUIT_RESULT_OK);
  CHECK(s != NULL);
  /* Another config: refused, never reinterpreted. */
  {
    const circuit_segment *again = NULL;
    CHECK_RC(open_at(path, other, &again), CIRCUIT_RESULT_SEGMENT_INVALID);
    CHECK_ERR_MENTIONS("another config");
    CHECK(again == NULL);
  }
  /* Not a segment. */
  path_of(junk, sizeof junk, "junk");
  f = fopen(junk, "w");
  CHECK(f != NULL);
  if (f != NULL) {
    int k;
    /* Longer than a header, and not one. */
    for (k = 0; k < 64; k++) fputs("junk", f);
    fclose(f);
  }
  CHECK(chmod(junk, 0600) == 0);
  {
    const circuit_segment *x = NULL;
    CHECK_RC(open_at(junk, c, &x), CIRCUIT_RESULT_SEGMENT_INVALID);
    CHECK_ERR_MENTIONS("magic");
  }
  /* A symlink to a valid segment is not followed. */
  path_of(link_path, sizeof link_path, "link");
  CHECK(symlink(path, link_path) == 0);
  {
    const circuit_segment *x = NULL;
    CHECK_RC(open_at(link_path, c, &x), CIRCUIT_RESULT_SEGMENT_UNSAFE);
  }
  /* A directory that does not exist. */
  {
    const circuit_segment *x = NULL;
    char missing[320];
    snprintf(missing, sizeof missing, "%s/no/such/dir/seg", dir);
    CHECK_RC(open_at(missing, c, &x), CIRCUIT_RESULT_SEGMENT_IO);
  }
  /* Bad names and arguments. */
  {
    const circuit_segment *x = NULL;
    /* Without a '/' it is a name under /dev/shm: these are not names. */
    CHECK_RC(circuit_segment_open("bad name", 8, c, 0, 0, 0, &x),
             CIRCUIT_RESULT_INVALID_ARGUMENT);
    CHECK_RC(circuit_segment_open(".hidden", 7, c, 0, 0, 0, &x),
             CIRCUIT_RESULT_INVALID_ARGUMENT);
    CHECK_RC(circuit_segment_open(path, strlen(path), c, 0, 0, 0400,
                                  &x),
             CIRCUIT_RESULT_INVALID_ARGUMENT);
    CHECK_RC(circuit_segment_open(path, strlen(path), NULL, 0, 0, 0,
                                  &x),
             CIRCUIT_RESULT_NULL_ARGUMENT);
    CHECK_RC(circuit_segment_breaker(NULL, "a", 1, &b), CIRCUIT_RESULT_NULL_ARGUMENT);
    CHECK_RC(circuit_segment_breaker(s, "", 0, &b), CIRCUIT_RESULT_INVALID_ARGUMENT);
    CHECK_RC(circuit_segment_breaker(s, "\xff", 1, &b), CIRCUIT_RESULT_INVALID_UTF8);
  }
  /* Capacity 8: the ninth name does not fit. */
  {
    int i;
    char name[16];
    for (i = 0; i < 8; i++) {
      snprintf(name, sizeof name, "n%d", i);
      CHECK_RC(circuit_segment_breaker(s, name, strlen(name), &b), CIRCUIT_RESULT_OK);
      circuit_breaker_free(b);
    }
    CHECK_RC(circuit_segment_breaker(s, "ninth", 5, &b), CIRCUIT_RESULT_LIMIT_EXCEEDED);
  }
  circuit_segment_free(s);
  circuit_segment_free(NULL);
  unlink(link_path);
  unlink(junk);
  unlink(path);
  circuit_config_free(c);
  circuit_config_free(other);
}

/* A worker process: its own mapping of the segment, its own breaker
 * handle; CALLS_PER_WORKER successes, then one failure. Exit status 0 when
 * every call was admitted and counted. */
static int worker(const char *path) {
  circuit_config *c = consecutive(WORKERS + 1);
  const circuit_segment *s = NULL;
  const circuit_breaker *b = NULL;
  circuit_permit p;
  int i, bad = 0;
  if (open_at(path, c, &s) != CIRCUIT_RESULT_OK) return 2;
  if (circuit_segment_breaker(s, "partner", 7, &b) != CIRCUIT_RESULT_OK) return 3;
  circuit_segment_free(s); /* the breaker keeps the mapping */
  for (i = 0; i < CALLS_PER_WORKER; i++) {
    if (circuit_breaker_acquire(b, &p, NULL) != CIRCUIT_RESULT_OK) {
      bad++;
      continue;
    }
    if (circuit_breaker_record(b, p, CIRCUIT_OUTCOME_SUCCESS, 1000) != CIRCUIT_RESULT_OK) bad++;
  }
  if (circuit_breaker_acquire(b, &p, NULL) != CIRCUIT_RESULT_OK) bad++;
  else if (circuit_breaker_record(b, p, CIRCUIT_OUTCOME_FAILURE, 1000) != CIRCUIT_RESULT_OK) bad++;
  circuit_breaker_free(b);
  circuit_config_free(c);
  return bad == 0 ? 0 : 1;
}

static void test_processes_share_one_breaker(void) {
  char path[300];
  pid_t pids[WORKERS];
  int i;
  circuit_config *c = consecutive(WORKERS + 1);
  const circuit_segment *s = NULL;
  const circuit_breaker *b = NULL;
  circuit_metrics m;
  circuit_permit p;
  uint32_t state = 0;

  path_of(path, sizeof path, "shared");
  for (i = 0; i < WORKERS; i++) {
    pids[i] = fork();
    if (pids[i] == 0) _exit(worker(path));
    CHECK(pids[i] > 0);
  }
  for (i = 0; i < WORKERS; i++) {
    int status = 0;
    CHECK(waitpid(pids[i], &status, 0) == pids[i]);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  CHECK_RC(open_at(path, c, &s), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_segment_breaker(s, "partner", 7, &b), CIRCUIT_RESULT_OK);
  /* The workers' last failures were one run of WORKERS only if no success
   * came between them; each worker's failure came after all of its own
   * successes, so the run is at least 1: still CLOSED, and one failure
   * more from this process may or may not trip it. The counts are exact. */
  memset(&m, 0, sizeof m);
  m.struct_size = sizeof m;
  CHECK_RC(circuit_breaker_metrics(b, &m), CIRCUIT_RESULT_OK);
  CHECK(m.successes == (uint64_t)WORKERS * CALLS_PER_WORKER);
  CHECK(m.failures == WORKERS);
  /* This process's failures add to the same consecutive counter: at most
   * WORKERS + 1 of them trip it, and every process then sees it OPEN. */
  for (i = 0; i < WORKERS + 1; i++) {
    if (circuit_breaker_acquire(b, &p, NULL) != CIRCUIT_RESULT_OK) break;
    CHECK(circuit_breaker_record(b, p, CIRCUIT_OUTCOME_FAILURE, 1000) == CIRCUIT_RESULT_OK);
  }
  CHECK_RC(circuit_breaker_state(b, &state), CIRCUIT_RESULT_OK);
  CHECK(state == CIRCUIT_STATE_OPEN);
  {
    pid_t child = fork();
    if (child == 0) {
      const circuit_segment *s2 = NULL;
      const circuit_breaker *b2 = NULL;
      uint32_t st = 0;
      int code = 0;
      if (open_at(path, c, &s2) != CIRCUIT_RESULT_OK) _exit(2);
      if (circuit_segment_breaker(s2, "partner", 7, &b2) != CIRCUIT_RESULT_OK) _exit(3);
      if (circuit_breaker_acquire(b2, &p, NULL) != CIRCUIT_RESULT_REJECTED_OPEN) code = 4;
      if (circuit_breaker_state(b2, &st) != CIRCUIT_RESULT_OK || st != CIRCUIT_STATE_OPEN) code = 5;
      circuit_breaker_free(b2);
      circuit_segment_free(s2);
      circuit_breaker_free(b);
      circuit_segment_free(s);
      circuit_config_free(c);
      _exit(code);
    } else {
      int status = 0;
      CHECK(waitpid(child, &status, 0) == child);
      CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
  }
  circuit_breaker_free(b);
  circuit_segment_free(s);
  circuit_config_free(c);
  unlink(path);
}

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void sleep_ms(long ms) {
  struct timespec ts;
  ts.tv_sec = ms / 1000;
  ts.tv_nsec = (ms % 1000) * 1000000L;
  nanosleep(&ts, NULL);
}

/* A forked process takes the half-open probe and is SIGKILLed holding it:
 * the probe lease frees the slot for this process. */
static void test_probe_of_a_killed_process_is_reclaimed(void) {
  char path[300];
  circuit_config_builder *cb = circuit_config_builder_new();
  circuit_config *c = NULL;
  const circuit_segment *s = NULL;
  const circuit_breaker *b = NULL;
  circuit_permit p;
  uint32_t state = 0;
  int fds[2];
  char got = 0;
  pid_t child;
  uint64_t held;
  circuit_result rc;

  CHECK_RC(circuit_config_builder_set_consecutive_failures(cb, 1), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_config_builder_set_open_duration(cb, 50000000u), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_config_builder_set_jitter(cb, 0.0), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_config_builder_set_probe_lease(cb, 300000000u), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_config_builder_build(cb, &c), CIRCUIT_RESULT_OK);
  circuit_config_builder_free(cb);
  path_of(path, sizeof path, "probe");
  CHECK_RC(open_at(path, c, &s), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_segment_breaker(s, "p", 1, &b), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_breaker_acquire(b, &p, NULL), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_breaker_record(b, p, CIRCUIT_OUTCOME_FAILURE, 1000), CIRCUIT_RESULT_OK);
  sleep_ms(80);
  CHECK(pipe(fds) == 0);
  child = fork();
  if (child == 0) {
    char ok = 'n';
    close(fds[0]);
    if (circuit_breaker_acquire(b, &p, NULL) == CIRCUIT_RESULT_OK &&
        (p.flags & CIRCUIT_PERMIT_PROBE) != 0) {
      ok = 'y';
    }
    if (write(fds[1], &ok, 1) != 1) _exit(2);
    for (;;) pause(); /* holding the probe until killed */
  }
  close(fds[1]);
  CHECK(read(fds[0], &got, 1) == 1 && got == 'y');
  close(fds[0]);
  held = now_ns();
  CHECK(kill(child, SIGKILL) == 0);
  {
    int status = 0;
    CHECK(waitpid(child, &status, 0) == child);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  }
  CHECK_RC(circuit_breaker_state(b, &state), CIRCUIT_RESULT_OK);
  CHECK(state == CIRCUIT_STATE_HALF_OPEN);
  CHECK_RC(circuit_breaker_acquire(b, &p, NULL), CIRCUIT_RESULT_REJECTED_HALF_OPEN_FULL);
  while ((rc = circuit_breaker_acquire(b, &p, NULL)) != CIRCUIT_RESULT_OK &&
         now_ns() - held < 5000000000u) {
    sleep_ms(10);
  }
  CHECK_RC(rc, CIRCUIT_RESULT_OK);
  CHECK(now_ns() - held >= 250000000u);
  CHECK((p.flags & CIRCUIT_PERMIT_PROBE) != 0);
  CHECK_RC(circuit_breaker_record(b, p, CIRCUIT_OUTCOME_SUCCESS, 1000), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_breaker_state(b, &state), CIRCUIT_RESULT_OK);
  CHECK(state == CIRCUIT_STATE_CLOSED);
  circuit_breaker_free(b);
  circuit_segment_free(s);
  circuit_config_free(c);
  unlink(path);
}

/* A counter in a file mapped by every forked process (MAP_SHARED). */
static uint64_t *shared_counter(const char *file) {
  char path[300];
  int fd;
  void *m;
  path_of(path, sizeof path, file);
  fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
  CHECK(fd >= 0);
  CHECK(ftruncate(fd, (off_t)sizeof(uint64_t)) == 0);
  m = mmap(NULL, sizeof(uint64_t), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  CHECK(m != MAP_FAILED);
  close(fd);
  unlink(path);
  return (uint64_t *)m;
}

/* A worker of the SIGKILL run: SUCCESS and FAILURE alternately (survivors,
 * `calls` of each) or IGNORED until killed (victims); exit 0 when every
 * call was admitted. */
static int chaos_worker(const char *path, int victim, int calls) {
  circuit_config *c = consecutive(1000);
  const circuit_segment *s = NULL;
  const circuit_breaker *b = NULL;
  circuit_permit p;
  int i, bad = 0;
  if (open_at(path, c, &s) != CIRCUIT_RESULT_OK) return 2;
  if (circuit_segment_breaker(s, "partner", 7, &b) != CIRCUIT_RESULT_OK) return 3;
  for (i = 0; victim || i < 2 * calls; i++) {
    uint32_t outcome = victim ? CIRCUIT_OUTCOME_IGNORED
                              : (i % 2 ? CIRCUIT_OUTCOME_FAILURE : CIRCUIT_OUTCOME_SUCCESS);
    if (circuit_breaker_acquire(b, &p, NULL) != CIRCUIT_RESULT_OK) {
      bad++;
      continue;
    }
    if (circuit_breaker_record(b, p, outcome, 1000) != CIRCUIT_RESULT_OK) bad++;
  }
  circuit_breaker_free(b);
  circuit_segment_free(s);
  circuit_config_free(c);
  return bad == 0 ? 0 : 1;
}

/* Workers SIGKILLed at whatever instruction they were running: the
 * survivors' successes and failures are all counted (a victim only ever
 * records IGNORED, so no count of theirs can be mistaken for one), and the
 * breaker still admits calls. */
static void test_killed_workers_lose_no_count(void) {
  enum { SURVIVORS = 3, VICTIMS = 3, CALLS = 20000 };
  char path[300];
  pid_t survivors[SURVIVORS], victims[VICTIMS];
  circuit_config *c = consecutive(1000);
  const circuit_segment *s = NULL;
  const circuit_breaker *b = NULL;
  circuit_metrics m;
  circuit_permit p;
  int i;

  path_of(path, sizeof path, "chaos");
  CHECK_RC(open_at(path, c, &s), CIRCUIT_RESULT_OK);
  for (i = 0; i < VICTIMS; i++) {
    victims[i] = fork();
    if (victims[i] == 0) _exit(chaos_worker(path, 1, 0));
    CHECK(victims[i] > 0);
  }
  for (i = 0; i < SURVIVORS; i++) {
    survivors[i] = fork();
    if (survivors[i] == 0) _exit(chaos_worker(path, 0, CALLS));
    CHECK(survivors[i] > 0);
  }
  for (i = 0; i < VICTIMS; i++) {
    int status = 0;
    sleep_ms(5 + 7 * i);
    CHECK(kill(victims[i], SIGKILL) == 0);
    CHECK(waitpid(victims[i], &status, 0) == victims[i]);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  }
  for (i = 0; i < SURVIVORS; i++) {
    int status = 0;
    CHECK(waitpid(survivors[i], &status, 0) == survivors[i]);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  CHECK_RC(circuit_segment_breaker(s, "partner", 7, &b), CIRCUIT_RESULT_OK);
  memset(&m, 0, sizeof m);
  m.struct_size = sizeof m;
  CHECK_RC(circuit_breaker_metrics(b, &m), CIRCUIT_RESULT_OK);
  CHECK(m.successes == (uint64_t)SURVIVORS * CALLS);
  CHECK(m.failures == (uint64_t)SURVIVORS * CALLS);
  CHECK_RC(circuit_breaker_acquire(b, &p, NULL), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_breaker_record(b, p, CIRCUIT_OUTCOME_SUCCESS, 1000), CIRCUIT_RESULT_OK);
  circuit_breaker_free(b);
  circuit_segment_free(s);
  circuit_config_free(c);
  unlink(path);
}

/* 8 forked workers call a partner that fails every call, each through its
 * breaker (threshold 5), until refused; the partner's calls are counted in
 * shared memory. Returns them. */
static uint64_t partner_calls(int shared) {
  enum { PARTNER_WORKERS = 8 };
  char path[300];
  pid_t pids[PARTNER_WORKERS];
  uint64_t *calls = shared_counter("partner-calls");
  uint64_t n;
  int go[2], i;

  path_of(path, sizeof path, "partner");
  CHECK(pipe(go) == 0);
  for (i = 0; i < PARTNER_WORKERS; i++) {
    pids[i] = fork();
    if (pids[i] == 0) {
      circuit_config *c = consecutive(5);
      const circuit_segment *s = NULL;
      const circuit_breaker *b = NULL;
      circuit_permit p;
      circuit_result rc;
      char x;
      if (shared) {
        if (open_at(path, c, &s) != CIRCUIT_RESULT_OK) _exit(2);
        if (circuit_segment_breaker(s, "partner", 7, &b) != CIRCUIT_RESULT_OK) _exit(3);
      } else if (circuit_breaker_new(c, NULL, &b) != CIRCUIT_RESULT_OK) {
        _exit(4);
      }
      if (read(go[0], &x, 1) != 1) _exit(5);
      while ((rc = circuit_breaker_acquire(b, &p, NULL)) == CIRCUIT_RESULT_OK) {
        __atomic_fetch_add(calls, 1, __ATOMIC_RELAXED); /* the call reaches the partner */
        /* STALE: another worker's failure opened the shared breaker while
         * this call was in flight. */
        rc = circuit_breaker_record(b, p, CIRCUIT_OUTCOME_FAILURE, 1000);
        if (rc != CIRCUIT_RESULT_OK && rc != CIRCUIT_RESULT_STALE) _exit(6);
      }
      _exit(rc == CIRCUIT_RESULT_REJECTED_OPEN ? 0 : 7);
    }
    CHECK(pids[i] > 0);
  }
  CHECK(write(go[1], "xxxxxxxx", PARTNER_WORKERS) == PARTNER_WORKERS);
  for (i = 0; i < PARTNER_WORKERS; i++) {
    int status = 0;
    CHECK(waitpid(pids[i], &status, 0) == pids[i]);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      printf("partner worker %d (%s breaker): wait status %d\n", i, shared ? "shared" : "own", status);
    }
  }
  close(go[0]);
  close(go[1]);
  n = __atomic_load_n(calls, __ATOMIC_RELAXED);
  munmap(calls, sizeof *calls);
  unlink(path);
  return n;
}

/* With a breaker per process every worker fails 5 times (40 calls); with
 * one shared breaker the fifth failure of any worker trips it for all, and
 * the rest are calls the others had in flight (at most one each). */
static void test_failing_partner_scenario(void) {
  uint64_t separate = partner_calls(0);
  uint64_t shared = partner_calls(1);
  printf("calls reaching the failing partner before 8 workers stop (threshold 5): "
         "shared breaker %llu, per-process breakers %llu\n",
         (unsigned long long)shared, (unsigned long long)separate);
  CHECK(separate == 8 * 5);
  CHECK(shared >= 5 && shared < 5 + 8);
}

/* Registries on one segment (circuit_registry_new_on_segment) in two
 * processes: one breaker per name; another config and reconfigure are
 * refused; a full segment is LIMIT_EXCEEDED. */
static void test_registries_on_a_segment(void) {
  char path[300];
  circuit_config *c = consecutive(3);
  circuit_config *other = consecutive(9);
  const circuit_segment *s = NULL;
  const circuit_registry *r = NULL;
  const circuit_breaker *b = NULL;
  uint32_t state = 0;
  size_t len = 0;
  pid_t child;
  int i, status = 0;

  path_of(path, sizeof path, "registry");
  CHECK_RC(open_at(path, c, &s), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_registry_new_on_segment(NULL, 0, 0, &r), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK_RC(circuit_registry_new_on_segment(s, 0, 0, NULL), CIRCUIT_RESULT_NULL_ARGUMENT);
  CHECK_RC(circuit_registry_new_on_segment(s, 0, 0, &r), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_registry_set_config(r, "partner", 7, other), CIRCUIT_RESULT_INVALID_CONFIG);
  CHECK_ERR_MENTIONS("segment");
  CHECK_RC(circuit_registry_set_config(r, "partner", 7, c), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_registry_get_or_create(r, "partner", 7, &b), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_registry_reconfigure(r, "partner", 7, other), CIRCUIT_RESULT_INVALID_CONFIG);
  CHECK_ERR_MENTIONS("host-shared");

  /* A forked process with its own mapping and registry trips "partner". */
  child = fork();
  if (child == 0) {
    const circuit_segment *s2 = NULL;
    const circuit_registry *r2 = NULL;
    const circuit_breaker *b2 = NULL;
    circuit_permit p;
    int code = 0;
    if (open_at(path, c, &s2) != CIRCUIT_RESULT_OK) _exit(2);
    if (circuit_registry_new_on_segment(s2, 0, 0, &r2) != CIRCUIT_RESULT_OK) _exit(3);
    if (circuit_registry_get_or_create(r2, "partner", 7, &b2) != CIRCUIT_RESULT_OK) _exit(4);
    for (i = 0; i < 3; i++) {
      if (circuit_breaker_acquire(b2, &p, NULL) != CIRCUIT_RESULT_OK) code = 5;
      else if (circuit_breaker_record(b2, p, CIRCUIT_OUTCOME_FAILURE, 1000) != CIRCUIT_RESULT_OK) code = 6;
    }
    circuit_breaker_free(b2);
    circuit_registry_free(r2);
    circuit_segment_free(s2);
    _exit(code);
  }
  CHECK(child > 0);
  CHECK(waitpid(child, &status, 0) == child);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  CHECK_RC(circuit_breaker_state(b, &state), CIRCUIT_RESULT_OK);
  CHECK(state == CIRCUIT_STATE_OPEN);
  circuit_breaker_free(b);
  /* Capacity 8: seven more names fit, the ninth does not. */
  {
    char name[16];
    for (i = 0; i < 7; i++) {
      snprintf(name, sizeof name, "n%d", i);
      CHECK_RC(circuit_registry_get_or_create(r, name, strlen(name), &b), CIRCUIT_RESULT_OK);
      circuit_breaker_free(b);
    }
    CHECK_RC(circuit_registry_get_or_create(r, "ninth", 5, &b), CIRCUIT_RESULT_LIMIT_EXCEEDED);
    CHECK_ERR_MENTIONS("segment is full");
    CHECK_RC(circuit_registry_len(r, &len), CIRCUIT_RESULT_OK);
    CHECK(len == 8);
  }
  /* The registry keeps the mapping: the caller's handle may go first. */
  circuit_segment_free(s);
  CHECK_RC(circuit_registry_get_or_create(r, "partner", 7, &b), CIRCUIT_RESULT_OK);
  CHECK_RC(circuit_breaker_state(b, &state), CIRCUIT_RESULT_OK);
  CHECK(state == CIRCUIT_STATE_OPEN);
  circuit_breaker_free(b);
  circuit_registry_free(r);
  circuit_config_free(c);
  circuit_config_free(other);
  unlink(path);
}

int main(void) {
  snprintf(dir, sizeof dir, "/tmp/circuit-c-shared-%ld", (long)getpid());
  if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
    perror("mkdir");
    return 1;
  }
  test_refusals();
  test_processes_share_one_breaker();
  test_killed_workers_lose_no_count();
  test_probe_of_a_killed_process_is_reclaimed();
  test_failing_partner_scenario();
  test_registries_on_a_segment();
  rmdir(dir);
  return check_summary();
}
