/*
 * circuit._speedups: `with breaker:` (Breaker.__enter__ / __exit__) in C.
 *
 * Optional: circuit/_breaker.py uses it when it imports and binds, and keeps
 * its pure-Python methods otherwise (CIRCUIT_PURE_PYTHON=1 forces them).
 * Built with the limited API of CPython 3.8, so the one cp38-abi3 wheel
 * carries it for every CPython from 3.8 on.
 *
 * A thin view, no logic twice:
 *   - admission is the header's contract for circuit_breaker_state_word:
 *     load the state word atomically (acquire); if none of the fast-path
 *     mask bits is set, the permit is { generation = word >> shift,
 *     flags = 0 }; otherwise the Python slow path, `self._acquire_slow()`
 *     (which raises on rejection), gives the permit int;
 *   - the untimed success of a flags-0 permit is
 *     circuit_breaker_record_success(breaker, generation); every other exit
 *     (an exception, a timed entry, flags != 0, a closed breaker) is handed
 *     to the Python method `self._exit_record(permit, duration_ns, et, ev)`,
 *     which holds the rules.
 * The extension is not linked against libcircuit: `bind()` receives the
 * address of circuit_breaker_record_success from the library the ctypes
 * layer loaded (CIRCUIT_LIBRARY, the bundled one, the slim one: whichever),
 * and the mask and shift from the constants generated from the header.
 *
 * Permits wait in a per-thread stack of (breaker serial, permit, start)
 * entries; `__exit__` takes the newest entry of its own breaker in the
 * calling thread, as the pure-Python version does with its per-breaker
 * thread-local list. A breaker is identified by a serial number it takes
 * on its first `__enter__`, never reused, so an entry left behind by an
 * object since freed can never be matched by a new object at the same
 * address. Everything here runs with the GIL held (the foreign call
 * included, as through the binding's PyDLL), which is what makes the
 * globals and a close() on another thread safe (see Breaker._delete).
 */
#define Py_LIMITED_API 0x03080000
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef uint32_t (*record_success_fn)(const void *breaker, uint32_t generation);

/* Set once by bind(); until then every exit goes to Python. */
static record_success_fn record_success;
static uint64_t fast_mask;
static unsigned generation_shift;
static uint64_t flags_mask; /* the permit int's bits below its generation */
static uint64_t next_serial;

/* The durations' clock: timer_ns[timer_name](), an int of ns, looked up on
 * every timed call in the namespace bind() gave (circuit._breaker's, where
 * `_pc` is time.perf_counter_ns): the very function the pure-Python
 * version calls, so both measure alike and a test replacing it reaches
 * both. */
static PyObject *timer_ns;
static PyObject *timer_name;

static PyObject *str_acquire_slow;
static PyObject *str_exit_record;

/* ---- the per-thread permit stack ------------------------------------------ */

typedef struct {
  uint64_t serial;   /* the breaker's */
  uint64_t permit;   /* generation << shift | flags */
  int64_t start_ns;  /* CLOCK_MONOTONIC at __enter__, when timed */
  int timed;
} entry;

typedef struct {
  entry *items;
  size_t len;
  size_t cap;
} stack;

static __thread stack permits;
/* Frees a thread's entries when it exits (no Python object is involved). */
static pthread_key_t permits_key;

static void free_permits(void *items) { free(items); }

/* Room for one more entry, made before admission so that a permit, once
 * taken, always has a place. */
static int reserve(void) {
  stack *s = &permits;
  if (s->len < s->cap) {
    return 0;
  }
  size_t cap = s->cap ? s->cap * 2 : 8;
  if (cap > PY_SSIZE_T_MAX / sizeof(entry)) {
    PyErr_NoMemory();
    return -1;
  }
  entry *items = realloc(s->items, cap * sizeof(entry));
  if (items == NULL) {
    PyErr_NoMemory();
    return -1;
  }
  s->items = items;
  s->cap = cap;
  /* What the thread-exit destructor frees (the array may have moved). */
  (void)pthread_setspecific(permits_key, items);
  return 0;
}

/* 0 and an exception set on failure. */
static int now_ns(int64_t *out) {
  PyObject *fn = timer_ns != NULL ? PyDict_GetItemWithError(timer_ns, timer_name) : NULL;
  if (fn == NULL) {
    if (!PyErr_Occurred()) {
      PyErr_SetString(PyExc_RuntimeError, "circuit._speedups: no timer bound");
    }
    return -1;
  }
  Py_INCREF(fn);
  PyObject *r = PyObject_CallObject(fn, NULL);
  Py_DECREF(fn);
  if (r == NULL) {
    return -1;
  }
  long long v = PyLong_AsLongLong(r);
  Py_DECREF(r);
  if (v == -1 && PyErr_Occurred()) {
    return -1;
  }
  *out = (int64_t)v;
  return 0;
}

/* ---- FastEnter ---------------------------------------------------------------- */

typedef struct {
  PyObject_HEAD
  const void *breaker;     /* the library's breaker; NULL: none (closed) */
  const uint64_t *word;    /* its state word; NULL: every admission is slow */
  uint64_t serial;         /* 0 until the first __enter__ */
  int timed;
} FastEnter;

static PyObject *fast_enter(PyObject *op, PyObject *unused) {
  (void)unused;
  FastEnter *self = (FastEnter *)op;
  if (reserve() < 0) {
    return NULL;
  }
  /* The start time before admission, so that a failing timer (a test's
   * replacement) leaves no permit behind. */
  int timed = self->timed;
  int64_t start = 0;
  if (timed && now_ns(&start) < 0) {
    return NULL;
  }
  uint64_t p;
  const uint64_t *word = self->word;
  uint64_t w = word != NULL ? __atomic_load_n(word, __ATOMIC_ACQUIRE) : fast_mask;
  if (word != NULL && (w & fast_mask) == 0) {
    p = (w >> generation_shift) << generation_shift; /* flags 0 */
  } else {
    PyObject *r = PyObject_CallMethodObjArgs(op, str_acquire_slow, NULL);
    if (r == NULL) {
      return NULL;
    }
    p = PyLong_AsUnsignedLongLong(r);
    Py_DECREF(r);
    if (p == (uint64_t)-1 && PyErr_Occurred()) {
      return NULL;
    }
  }
  /* The timer and the slow path ran Python code (a transition listener, a
   * test's timer) that may have entered a `with` and left its entry in the
   * room made above, so make sure of it again. Failing here (out of
   * memory) loses the permit, as a failing list.append does in the
   * pure-Python version. */
  if (reserve() < 0) {
    return NULL;
  }
  if (self->serial == 0) {
    self->serial = ++next_serial;
  }
  entry *e = &permits.items[permits.len++];
  e->serial = self->serial;
  e->permit = p;
  e->timed = timed;
  e->start_ns = start;
  Py_INCREF(op);
  return op;
}

static PyObject *fast_exit(PyObject *op, PyObject *args) {
  FastEnter *self = (FastEnter *)op;
  if (PyTuple_Size(args) != 3) {
    PyErr_SetString(PyExc_TypeError, "__exit__ takes exactly 3 arguments");
    return NULL;
  }
  PyObject *et = PyTuple_GetItem(args, 0);
  PyObject *ev = PyTuple_GetItem(args, 1);
  stack *s = &permits;
  size_t i = s->len;
  uint64_t serial = self->serial;
  while (i > 0 && s->items[i - 1].serial != serial) {
    i--;
  }
  if (i == 0) {
    PyErr_SetString(PyExc_RuntimeError,
                    "Breaker.__exit__ without a matching __enter__ in this thread");
    return NULL;
  }
  entry e = s->items[i - 1];
  if (i < s->len) { /* not the newest: another breaker's entries lie above */
    memmove(&s->items[i - 1], &s->items[i], (s->len - i) * sizeof(entry));
  }
  s->len--;
  if (et == Py_None && !e.timed && (e.permit & flags_mask) == 0 && self->breaker != NULL &&
      record_success != NULL) {
    (void)record_success(self->breaker, (uint32_t)(e.permit >> generation_shift));
    Py_INCREF(Py_False);
    return Py_False;
  }
  int64_t d = 0;
  if (e.timed) {
    if (now_ns(&d) < 0) {
      return NULL; /* the permit is lost, as when _pc() raises in Python */
    }
    d -= e.start_ns;
  }
  PyObject *pp = PyLong_FromUnsignedLongLong(e.permit);
  PyObject *dd = pp != NULL ? PyLong_FromLongLong(d < 0 ? 0 : d) : NULL;
  PyObject *r = NULL;
  if (dd != NULL) {
    r = PyObject_CallMethodObjArgs(op, str_exit_record, pp, dd, et, ev, NULL);
  }
  Py_XDECREF(pp);
  Py_XDECREF(dd);
  if (r == NULL) {
    return NULL;
  }
  Py_DECREF(r);
  Py_INCREF(Py_False);
  return Py_False;
}

/* _fast_set(breaker_address, word_address, timed): what __enter__ and
 * __exit__ read; 0 for an address means none (a closed breaker). */
static PyObject *fast_set(PyObject *op, PyObject *args) {
  FastEnter *self = (FastEnter *)op;
  PyObject *b, *w;
  int timed;
  if (!PyArg_ParseTuple(args, "OOp:_fast_set", &b, &w, &timed)) {
    return NULL;
  }
  if (!PyLong_Check(b) || !PyLong_Check(w)) {
    PyErr_SetString(PyExc_TypeError, "_fast_set: addresses must be ints");
    return NULL;
  }
  void *bp = PyLong_AsVoidPtr(b);
  if (bp == NULL && PyErr_Occurred()) {
    return NULL;
  }
  void *wp = PyLong_AsVoidPtr(w);
  if (wp == NULL && PyErr_Occurred()) {
    return NULL;
  }
  if (((uintptr_t)wp & (sizeof(uint64_t) - 1)) != 0) {
    PyErr_SetString(PyExc_ValueError, "_fast_set: the state word must be 8-byte aligned");
    return NULL;
  }
  if ((bp == NULL) != (wp == NULL)) {
    PyErr_SetString(PyExc_ValueError, "_fast_set: give both addresses or neither");
    return NULL;
  }
  self->breaker = bp;
  self->word = wp;
  self->timed = timed;
  Py_RETURN_NONE;
}

/* _fast_timed(timed): whether the next __enter__ takes a start time (a
 * reconfigure changed it). Never touches the addresses, so it cannot bring
 * back a breaker that a close() on another thread has just forgotten. */
static PyObject *fast_timed(PyObject *op, PyObject *arg) {
  int timed = PyObject_IsTrue(arg);
  if (timed < 0) {
    return NULL;
  }
  ((FastEnter *)op)->timed = timed;
  Py_RETURN_NONE;
}

static PyMethodDef fast_methods[] = {
    {"__enter__", fast_enter, METH_NOARGS, "Admits a call (`with breaker:`)."},
    {"__exit__", fast_exit, METH_VARARGS, "Records the call admitted by the matching __enter__."},
    {"_fast_set", fast_set, METH_VARARGS,
     "_fast_set(breaker_address, word_address, timed): what __enter__/__exit__ read."},
    {"_fast_timed", fast_timed, METH_O, "_fast_timed(timed): whether __enter__ takes a start time."},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot fast_slots[] = {
    {Py_tp_doc, "Base of circuit.Breaker: `with breaker:` in C (circuit._speedups)."},
    {Py_tp_methods, fast_methods},
    {Py_tp_new, PyType_GenericNew},
    {0, NULL},
};

static PyType_Spec fast_spec = {
    "circuit._speedups.FastEnter",
    sizeof(FastEnter),
    0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    fast_slots,
};

/* ---- module ----------------------------------------------------------------- */

/* bind(record_success_address, fast_mask, generation_shift, timer_namespace,
 *      timer_name) */
static PyObject *bind(PyObject *module, PyObject *args) {
  (void)module;
  PyObject *fn;
  unsigned long long mask;
  unsigned int shift;
  PyObject *ns, *name;
  if (!PyArg_ParseTuple(args, "OKIO!U:bind", &fn, &mask, &shift, &PyDict_Type, &ns, &name)) {
    return NULL;
  }
  if (!PyLong_Check(fn)) {
    PyErr_SetString(PyExc_TypeError, "bind: the function address must be an int");
    return NULL;
  }
  void *addr = PyLong_AsVoidPtr(fn);
  if (addr == NULL) {
    if (!PyErr_Occurred()) {
      PyErr_SetString(PyExc_ValueError, "bind: NULL function address");
    }
    return NULL;
  }
  if (shift == 0 || shift > 63 || mask == 0 || mask >= (1ULL << shift)) {
    PyErr_SetString(PyExc_ValueError,
                    "bind: the mask must be nonzero and below the generation shift (1..63)");
    return NULL;
  }
  record_success = (record_success_fn)addr;
  fast_mask = mask;
  generation_shift = shift;
  flags_mask = (1ULL << shift) - 1;
  PyObject *old_ns = timer_ns, *old_name = timer_name;
  Py_INCREF(ns);
  Py_INCREF(name);
  timer_ns = ns;
  timer_name = name;
  Py_XDECREF(old_ns);
  Py_XDECREF(old_name);
  Py_RETURN_NONE;
}

/* _depth(): entries waiting in the calling thread's stack (tests). */
static PyObject *depth(PyObject *module, PyObject *unused) {
  (void)module;
  (void)unused;
  return PyLong_FromSize_t(permits.len);
}

static PyMethodDef module_methods[] = {
    {"bind", bind, METH_VARARGS,
     "bind(record_success_address, fast_mask, generation_shift, timer_namespace, timer_name): "
     "the library's function, the header's constants, the durations' clock."},
    {"_depth", depth, METH_NOARGS, "Permits waiting in this thread's stack."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "_speedups", "`with breaker:` in C; see circuit/_breaker.py.", -1,
    module_methods,        NULL,        NULL,
    NULL,                  NULL,
};

PyMODINIT_FUNC PyInit__speedups(void) {
  static int key_made;
  if (!key_made) {
    if (pthread_key_create(&permits_key, free_permits) != 0) {
      PyErr_SetString(PyExc_OSError, "pthread_key_create failed");
      return NULL;
    }
    key_made = 1;
  }
  if (str_acquire_slow == NULL) {
    str_acquire_slow = PyUnicode_InternFromString("_acquire_slow");
    str_exit_record = PyUnicode_InternFromString("_exit_record");
    if (str_acquire_slow == NULL || str_exit_record == NULL) {
      return NULL;
    }
  }
  PyObject *m = PyModule_Create(&module_def);
  if (m == NULL) {
    return NULL;
  }
  PyObject *t = PyType_FromSpec(&fast_spec);
  if (t == NULL || PyModule_AddObject(m, "FastEnter", t) < 0) {
    Py_XDECREF(t);
    Py_DECREF(m);
    return NULL;
  }
  return m;
}
