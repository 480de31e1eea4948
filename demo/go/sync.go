package main

// Fleet sync for the Go offer service: shares the registry's breakers with
// the other instances through Redis (the library's sync, SYNC.md).
//
// Package circuit does not wrap the sync functions (yet), so this calls
// circuit_sync_start / _status / _last_error / _stop / _free of the same
// libcircuit.so through cgo. They are looked up with dlsym, so the program
// builds and runs against a library without them (sync is then reported
// unavailable). circuit_sync_start needs the registry's C handle, which
// package circuit keeps unexported: registryHandle reads it by reflection,
// checking the layout it expects and refusing (sync unavailable) when the
// binding changed. Replace all this with the binding's own API once it has
// one.

// #cgo LDFLAGS: -ldl
// #define _GNU_SOURCE
// #include <dlfcn.h>
// #include <stdint.h>
// #include <stdio.h>
// #include <stdlib.h>
// #include <string.h>
//
// typedef struct {
//   uint32_t struct_size;
//   uint32_t state; /* 0 connected, 1 degraded, 2 stopped */
//   uint64_t published, applied, stale_ignored, malformed_ignored, unknown_ignored, refused,
//       reconnects, pending;
// } demo_sync_status;
//
// typedef uint32_t (*sync_start_fn)(const void *, const char *, size_t, const char *, size_t, void **);
// typedef uint32_t (*sync_status_fn)(const void *, demo_sync_status *);
// typedef uint32_t (*sync_last_error_fn)(const void *, char *, size_t, size_t *);
// typedef uint32_t (*sync_stop_fn)(const void *);
// typedef void (*sync_free_fn)(void *);
// typedef uint32_t (*last_error_fn)(char *, size_t, size_t *);
//
// static void *demo_sym(const char *name) { return dlsym(RTLD_DEFAULT, name); }
//
// static int demo_sync_available(void) {
//   return demo_sym("circuit_sync_start") && demo_sym("circuit_sync_status") &&
//          demo_sym("circuit_sync_stop") && demo_sym("circuit_sync_free");
// }
//
// static uint32_t demo_sync_start(const void *reg, const char *url, const char *ns, void **out,
//                                 char *err, size_t err_len) {
//   sync_start_fn start = (sync_start_fn)demo_sym("circuit_sync_start");
//   uint32_t rc = start(reg, url, strlen(url), ns, strlen(ns), out);
//   if (rc != 0) {
//     last_error_fn le = (last_error_fn)demo_sym("circuit_last_error");
//     size_t n = 0;
//     if (!le || le(err, err_len, &n) != 0) snprintf(err, err_len, "code %u", rc);
//   }
//   return rc;
// }
//
// static uint32_t demo_sync_read(const void *h, demo_sync_status *st, char *why, size_t why_len) {
//   sync_status_fn status = (sync_status_fn)demo_sym("circuit_sync_status");
//   sync_last_error_fn le = (sync_last_error_fn)demo_sym("circuit_sync_last_error");
//   size_t n = 0;
//   memset(st, 0, sizeof *st);
//   st->struct_size = sizeof *st;
//   why[0] = 0;
//   uint32_t rc = status(h, st);
//   if (rc == 0 && st->state == 1 && (!le || le(h, why, why_len, &n) != 0)) why[0] = 0;
//   return rc;
// }
//
// static void demo_sync_stop(void *h) {
//   ((sync_stop_fn)demo_sym("circuit_sync_stop"))(h);
//   ((sync_free_fn)demo_sym("circuit_sync_free"))(h);
// }
import "C"

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"

	"example.invalid/circuit"
)

// fleetSync shares the registry's breakers with the other instances.
type fleetSync interface {
	status() map[string]interface{}
	stop()
}

type noSync string

func (n noSync) status() map[string]interface{} {
	return map[string]interface{}{"enabled": false, "status": string(n)}
}
func (n noSync) stop() {}

type abiSync struct {
	mu       sync.Mutex
	handle   unsafe.Pointer // nil after stop
	registry *circuit.Registry
}

func (s *abiSync) status() map[string]interface{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.handle == nil {
		return map[string]interface{}{"enabled": true, "status": "stopped"}
	}
	var st C.demo_sync_status
	why := make([]byte, 256)
	if C.demo_sync_read(s.handle, &st, (*C.char)(unsafe.Pointer(&why[0])), C.size_t(len(why))) != 0 {
		return map[string]interface{}{"enabled": true, "status": "status failed"}
	}
	text := map[C.uint32_t]string{0: "connected", 1: "degraded", 2: "stopped"}[st.state]
	if w := C.GoString((*C.char)(unsafe.Pointer(&why[0]))); st.state == 1 && w != "" {
		text += ": " + w
	}
	return map[string]interface{}{
		"enabled": true, "status": text, "published": uint64(st.published),
		"applied": uint64(st.applied), "refused": uint64(st.refused), "reconnects": uint64(st.reconnects),
	}
}

func (s *abiSync) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.handle != nil {
		C.demo_sync_stop(s.handle)
		s.handle = nil
	}
}

// registryHandle returns the C registry behind r: the field ref (an
// atomic.Pointer) of circuit.Registry points to a struct whose field ptr is
// the *C.circuit_registry. Any other layout is an error, not a guess.
func registryHandle(r *circuit.Registry) (unsafe.Pointer, error) {
	v := reflect.ValueOf(r).Elem()
	ref := v.FieldByName("ref")
	if !ref.IsValid() || ref.Kind() != reflect.Struct || ref.Type().PkgPath() != "sync/atomic" {
		return nil, errors.New("circuit.Registry has no atomic ref field")
	}
	val := ref.FieldByName("v")
	if !val.IsValid() || val.Kind() != reflect.UnsafePointer || ref.Type().NumField() == 0 {
		return nil, errors.New("unexpected atomic.Pointer layout")
	}
	elem := ref.Type().Field(0).Type // [0]*T
	if elem.Kind() != reflect.Array || elem.Elem().Kind() != reflect.Pointer || elem.Elem().Elem().Kind() != reflect.Struct {
		return nil, errors.New("unexpected atomic.Pointer layout")
	}
	inner := elem.Elem().Elem()
	ptrField, ok := inner.FieldByName("ptr")
	if !ok || ptrField.Type.Kind() != reflect.Pointer || !strings.HasSuffix(ptrField.Type.Elem().Name(), "struct_circuit_registry") {
		return nil, fmt.Errorf("unexpected layout of %s", inner)
	}
	p := atomic.LoadPointer((*unsafe.Pointer)(unsafe.Pointer(val.UnsafeAddr())))
	if p == nil {
		return nil, errors.New("the registry is closed")
	}
	return *(*unsafe.Pointer)(unsafe.Add(p, ptrField.Offset)), nil
}

func startSync(reg *circuit.Registry, url, namespace, instance string) fleetSync {
	if url == "" {
		return noSync("off")
	}
	if C.demo_sync_available() == 0 {
		return noSync("unavailable: the library has no sync ABI")
	}
	h, err := registryHandle(reg)
	if err != nil {
		return noSync("unavailable: " + err.Error())
	}
	curl, cns := C.CString(url), C.CString(namespace)
	defer C.free(unsafe.Pointer(curl))
	defer C.free(unsafe.Pointer(cns))
	msg := make([]byte, 512)
	var out unsafe.Pointer
	if rc := C.demo_sync_start(h, curl, cns, &out, (*C.char)(unsafe.Pointer(&msg[0])), C.size_t(len(msg))); rc != 0 {
		return noSync("failed: " + C.GoString((*C.char)(unsafe.Pointer(&msg[0]))))
	}
	return &abiSync{handle: out, registry: reg}
}
