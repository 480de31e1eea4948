package main

// Fleet sync for the Go offer service: shares the registry's breakers with
// the other instances through Redis (the library's sync, SYNC.md).
//
// Package circuit does not wrap the sync functions (yet), so this calls
// circuit_sync_start / _status / _last_error / _stop / _free of the same
// libcircuit.so through cgo (ci/demo.sh links the binding with -tags
// circuit_shared). circuit_sync_start needs the registry's C handle, which
// package circuit keeps unexported: registryHandle reads it by reflection,
// checking the layout it expects and refusing (sync unavailable) when the
// binding changed. Replace all this with the binding's own API once it has
// one.

// #cgo CFLAGS: -I${SRCDIR}/../../include
// #cgo LDFLAGS: -lcircuit
// #include <stdlib.h>
// #include <string.h>
// #include "circuit.h"
//
// static circuit_result demo_sync_start(const void *reg, const char *url, const char *ns,
//                                       circuit_sync **out, char *err, size_t err_len) {
//   size_t n = 0;
//   circuit_result rc = circuit_sync_start((const circuit_registry *)reg, url, strlen(url), ns,
//                                          strlen(ns), out);
//   if (rc != CIRCUIT_RESULT_OK && circuit_last_error(err, err_len, &n) != CIRCUIT_RESULT_OK)
//     err[0] = 0;
//   return rc;
// }
//
// static circuit_result demo_sync_read(const circuit_sync *h, circuit_sync_stats *st, char *why,
//                                      size_t why_len) {
//   size_t n = 0;
//   memset(st, 0, sizeof *st);
//   st->struct_size = sizeof *st;
//   why[0] = 0;
//   circuit_result rc = circuit_sync_status(h, st);
//   if (rc == CIRCUIT_RESULT_OK && st->state == CIRCUIT_SYNC_DEGRADED &&
//       circuit_sync_last_error(h, why, why_len, &n) != CIRCUIT_RESULT_OK)
//     why[0] = 0;
//   return rc;
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
	handle   *C.circuit_sync // nil after stop
	registry *circuit.Registry
}

func (s *abiSync) status() map[string]interface{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.handle == nil {
		return map[string]interface{}{"enabled": true, "status": "stopped"}
	}
	var st C.circuit_sync_stats
	why := make([]byte, 256)
	if C.demo_sync_read(s.handle, &st, (*C.char)(unsafe.Pointer(&why[0])), C.size_t(len(why))) != 0 {
		return map[string]interface{}{"enabled": true, "status": "status failed"}
	}
	text := map[C.uint32_t]string{
		C.CIRCUIT_SYNC_CONNECTED: "connected", C.CIRCUIT_SYNC_DEGRADED: "degraded", C.CIRCUIT_SYNC_STOPPED: "stopped",
	}[st.state]
	if w := C.GoString((*C.char)(unsafe.Pointer(&why[0]))); st.state == C.CIRCUIT_SYNC_DEGRADED && w != "" {
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
		C.circuit_sync_stop(s.handle) // joins the worker's threads, bounded
		C.circuit_sync_free(s.handle)
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
	h, err := registryHandle(reg)
	if err != nil {
		return noSync("unavailable: " + err.Error())
	}
	curl, cns := C.CString(url), C.CString(namespace)
	defer C.free(unsafe.Pointer(curl))
	defer C.free(unsafe.Pointer(cns))
	msg := make([]byte, 512)
	var out *C.circuit_sync
	if rc := C.demo_sync_start(h, curl, cns, &out, (*C.char)(unsafe.Pointer(&msg[0])), C.size_t(len(msg))); rc != 0 {
		return noSync("failed: " + C.GoString((*C.char)(unsafe.Pointer(&msg[0]))))
	}
	return &abiSync{handle: out, registry: reg}
}
